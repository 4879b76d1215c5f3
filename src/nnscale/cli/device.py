"""`nnscale device`: the device's measured GEMM peak per precision and its memory bandwidth, measured
once and cached per machine (`nnscale.measure.device.measure_device`); MFU is relative to it."""

from __future__ import annotations

import json
from dataclasses import asdict

from nnscale.errors import UserError
from nnscale.format import render, si
from nnscale.measure.device import cache_path, measure_device
from nnscale.cli.values import check_thread_option
from nnscale.measure.validate import check_seconds
from nnscale.records import PRECISIONS

COLUMNS = (("what", "measured"), ("n", "size"), ("value", "peak"))


def add_parser(sub) -> None:
    p = sub.add_parser("device", help="measure (once, then cached) the device's GEMM peak and bandwidth")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads, 1 to 1024 (default: all usable cores)")
    p.add_argument("--precision", metavar="LIST", help="precisions to measure (default: all the device has)")
    p.add_argument("--seconds", type=float, default=1.0, help="time per test (default 1)")
    p.add_argument("--refresh", action="store_true", help="measure again even if cached")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(handle=handle)


def handle(args) -> int:
    precisions = None
    if args.precision:
        precisions = tuple(p.strip() for p in args.precision.split(","))
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise UserError(f"unknown precision {bad[0]!r}: expected a list of {', '.join(PRECISIONS)}")
        if args.device == "cpu" and "tf32" in precisions:
            raise UserError("tf32 is a format of NVIDIA GPUs; on cpu measure fp32, bf16 or fp16")
    check_seconds(args.seconds, "--seconds", maximum=3600.0)  # inf would measure for ever
    check_thread_option(args.threads, "--threads")
    profile, cached = measure_device(args.device, args.threads or 0, precisions, args.seconds, args.refresh)
    if args.format == "json":
        print(json.dumps(dict(asdict(profile), cached=cached, cache=str(cache_path())), indent=2))
        return 0
    rows = [{"what": f"GEMM {p}", "n": f"{profile.gemm_n.get(p, '')}", "value": f"{si(v)}FLOP/s"}
            for p, v in profile.gemm_flop_per_s.items()]
    if profile.bandwidth_bytes_per_s:
        rows.append({"what": "memory copy", "n": "", "value": f"{si(profile.bandwidth_bytes_per_s)}B/s"})
    print(f"{profile.device_name} on {profile.host}, torch {profile.torch_version}, "
          f"{profile.threads} threads")
    print(render(rows, COLUMNS))
    state = f"cached, measured {profile.measured_utc[:19]} UTC" if cached else \
        f"measured in {profile.seconds:.1f} s"
    print(f"\n{state}; {cache_path()} (--refresh measures again)")
    return 0
