from mfrec.cli import main

raise SystemExit(main())
