"""The parse cache's content check against the parse it saves (docs/cli.md, issue 21).

Run: ``python benchmarks/bench_cache_check.py [--rows N] [--hash sha256|xxh3]``. Writes the
synthetic ml-25m-shaped file of ``bench_parse.py`` under benchmarks/out/ and prints, as JSON,
medians of 3 (wall and CPU seconds) of: a parse without the cache, the content hash alone, and
a cache hit (content hash, checksum and range checks, load).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import time

from bench_parse import OUT, make_file  # run as a script: benchmarks/ is on sys.path


def timed(fn, repeats: int) -> dict:
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": round(statistics.median(wall), 3), "cpu_s": round(statistics.median(cpu), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--hash", choices=("auto", "sha256"), default="auto",
                        help="sha256: ignore an installed xxhash")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["MFREC_CACHE"] = str(OUT / "cache-check")
    path = OUT / f"ratings-{args.rows}.csv"
    make_file(path, args.rows)

    import mfrec.data.parse as parse

    if args.hash == "sha256":
        parse._hasher = lambda: ("sha256", hashlib.sha256)
    tiny = OUT / "tiny.csv"
    tiny.write_text("1,2,3.5,4\n")
    parse.read_ratings(tiny, cache=False)  # compile the kernels first

    def content_hash() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            parse.content_digest(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    result = {
        "rows": args.rows,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "hash": parse._hasher()[0],
        "parse": timed(lambda: parse.read_ratings(path, cache=False), args.repeats),
        "content_hash": timed(content_hash, args.repeats),
    }
    parse.read_ratings(path, cache=True)  # write the entry
    result["cache_hit"] = timed(lambda: parse.read_ratings(path, cache=True), args.repeats)
    result["hash_over_parse_cpu"] = round(
        result["content_hash"]["cpu_s"] / result["parse"]["cpu_s"], 3
    )
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
