"""`nnscale predict`: data-parallel speed at any number of GPUs and nodes, on hardware from the catalogue.

    nnscale predict MODEL --device h100|measured:RUN --gpus-per-node 8 --nodes 1,2,4,...,128 ...
    nnscale predict --validate RUN      leave-one-out over a run's measured points
    nnscale predict --published         published scaling results beside the model's
    nnscale predict --list              the catalogue's devices and links

The model itself is `nnscale.predict` (no torch); this layer counts the network (`nnscale.netstats`)
and reads the results store.
"""

from __future__ import annotations

import argparse
import json
import math

from nnscale.errors import UserError
from nnscale.format import FORMATS, render, si
from nnscale.predict import published
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.comm import ALGORITHMS
from nnscale.predict.model import DEFAULT_EFFICIENCY
from nnscale.records import PRECISIONS
from nnscale.glue.predict import DEFAULT_NODES, PredictRequest, prediction_report, validate_stored_run

COLUMNS = (("nodes", "nodes"), ("gpus", "GPUs"), ("global_batch", "batch"), ("batch_per_gpu", "batch/GPU"),
           ("samples_per_s", "samples/s"), ("speedup", "speedup"), ("efficiency", "efficiency"),
           ("compute_efficiency", "compute eff"), ("step_ms", "step ms"), ("compute_ms", "compute ms"),
           ("colocation_ms", "co-location ms"), ("comm_ms", "comm ms"), ("exposed_ms", "exposed ms"), ("contention_ms", "contention ms"),
           ("sync_ms", "sync ms"), ("framework_ms", "framework ms"), ("loss", "points lost: batch/co-location/exposed/contention/sync/overhead"),
           ("time_to_train_s", "time to train"), ("time_to_train_stat_s", "with stat. eff."),
           ("algorithm", "all-reduce"), ("limited_by", "limited by"))
LOO_COLUMNS = (("label", "point"), ("measured_ms", "measured ms"), ("predicted_ms", "predicted ms"),
               ("error", "error"), ("fitted", "fitted without it"))
PUB_COLUMNS = (("key", "case"), ("gpus", "GPUs"), ("baseline_gpus", "vs GPUs"), ("role", "role"),
               ("published", "published"), ("predicted", "predicted"), ("error_points", "error (points)"),
               ("leave_one_out", "leave-one-out"), ("inputs", "inputs"), ("source", "source"))


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value
    return parse


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict data-parallel scaling on hardware from the catalogue")
    p.add_argument("model", nargs="?", help="zoo name, torchvision:NAME or timm:NAME")
    p.add_argument("--device", help="catalogue device (see --list) or measured:RUN")
    p.add_argument("--gpus-per-node", type=_positive(int), default=8)
    p.add_argument("--nodes", default=DEFAULT_NODES, help=f"node counts (default {DEFAULT_NODES})")
    p.add_argument("--intra-link", help="link inside a node (default: the device's own)")
    p.add_argument("--inter-link", help="link between nodes, e.g. ib-ndr, 25gbe")
    p.add_argument("--nics-per-node", type=_positive(int),
                   help="NICs per node the GPUs share (default 1, or the device's reference system)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="auto",
                   help="all-reduce algorithm; auto = the fastest of ring and tree, as NCCL picks")
    p.add_argument("--batch-per-gpu", type=_positive(int))
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--dataset-size", type=_positive(int), help="samples per epoch (for time to train)")
    p.add_argument("--epochs", type=_positive(float), default=1.0,
                   help="epochs to the target at global batch 256 (grown by statistical efficiency)")
    p.add_argument("--global-batch", type=_positive(int),
                   help="strong scaling: this global batch split over the GPUs (instead of --batch-per-gpu)")
    p.add_argument("--noise-scale", type=float,
                   help="gradient noise scale in samples (McCandlish et al. 2018); default: shipped for ResNet-50")
    p.add_argument("--fusion", choices=("ddp", "horovod"), default="ddp", help="gradient bucketing")
    p.add_argument("--bucket-mb", type=_positive(float), default=25.0)
    p.add_argument("--first-bucket-mb", type=_positive(float), default=1.0)
    p.add_argument("--grad-bytes", type=_positive(int), default=4, help="bytes per gradient element")
    p.add_argument("--efficiency", type=_positive(float), help=f"fraction of peak (default {DEFAULT_EFFICIENCY})")
    p.add_argument("--samples-per-s", type=_positive(float), help="measured one-device rate at the batch")
    p.add_argument("--overlap", type=float, help="fraction of in-backward communication hidden (0..1)")
    p.add_argument("--overhead-ms", type=float, help="fixed per-step overhead of data parallelism")
    p.add_argument("--input-size", help="CxHxW; default: the model's own")
    p.add_argument("--catalogue", help="YAML file adding to or overriding the shipped catalogue")
    p.add_argument("--store", help="results store (path or URL) for measured:RUN and --validate")
    p.add_argument("--validate", metavar="RUN", nargs="+", help="leave-one-out over the runs' measured points")
    p.add_argument("--published", action="store_true", help="published scaling results beside the model")
    p.add_argument("--list", action="store_true", help="the catalogue's devices and links")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(handle=handle)


def _duration(s: float | None) -> str | None:
    if s is None:
        return None
    for unit, secs in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= secs:
            return f"{s / secs:.1f} {unit}"
    return f"{s:.0f} s"


def _pretty(r: dict) -> dict:
    """A prediction row's cells as the table shows them."""
    rate = r["samples_per_s"]
    return dict(r, samples_per_s=si(rate) if rate >= 1e4 else f"{rate:.0f}", speedup=f"{r['speedup']:.1f}",
                efficiency=f"{100 * r['efficiency']:.0f} %", step_ms=f"{r['step_ms']:.1f}",
                compute_ms=f"{r['compute_ms']:.1f}", colocation_ms=f"{r['colocation_ms']:.1f}",
                comm_ms=f"{r['comm_ms']:.1f}",
                exposed_ms=f"{r['exposed_ms']:.1f}", contention_ms=f"{r['contention_ms']:.1f}",
                sync_ms=f"{r['sync_ms']:.1f}", framework_ms=f"{r['framework_ms']:.1f}",
                compute_efficiency=f"{100 * r['compute_efficiency']:.0f} %",
                loss="/".join(f"{r[k]:.1f}" for k in ("loss_batch", "loss_colocation", "loss_exposed",
                                                      "loss_contention", "loss_sync", "loss_overhead")),
                time_to_train_s=_duration(r["time_to_train_s"]),
                time_to_train_stat_s=_duration(r["time_to_train_stat_s"]))


def handle(args) -> int:
    fmt = args.format
    if args.list:
        cat = load_catalogue(args.catalogue)
        rows = [{"kind": "device", "name": d.name, "what": d.description} for d in cat.devices.values()]
        rows += [{"kind": "link", "name": k.name, "what": f"{k.description}: {k.bandwidth / 1e9:g} GB/s, "
                  f"alpha {1e6 * k.alpha_s:g} us, efficiency {k.efficiency:g}"} for k in cat.links.values()]
        print(render(rows, (("kind", "kind"), ("name", "name"), ("what", "what")), fmt))
        return 0
    if args.published:
        cat = load_catalogue(args.catalogue)
        rows = published.reproduction(published.CASES, published.shipped_profiles(), cat)
        band = published.error_band(rows)
        if fmt == "json":
            print(json.dumps({"error_band": {"points": band.points, "clusters": band.clusters,
                                             "left_out": list(band.left_out), "text": band.sentence()},
                              "rows": rows}, indent=2))
            return 0
        if fmt == "table":
            print(f"the model out of the box is {band.sentence()}; not in the band (hardware assumed): "
                  f"{', '.join(band.left_out) or 'none'}")
            rows = [dict(r, **{k: "-" if r[k] is None else f"{100 * r[k]:.1f} %"
                               for k in ("published", "predicted", "leave_one_out")},
                         error_points=f"{r['error_points']:+.1f}") for r in rows]
        print(render(rows, PUB_COLUMNS, fmt))
        if fmt == "table":  # language models (DP x FSDP x TP x PP): `nnscale plan --published` too
            from nnscale.cli.plan import published_table
            print("\n" + published_table(load_catalogue(args.catalogue)))
        return 0
    if args.validate:
        if args.model:
            raise UserError("give either MODEL or --validate RUN, not both")
        v = validate_stored_run(args.validate, args.store)
        if fmt != "table":  # one list; each row says its role (configuration / calibration input)
            print(render([r.to_dict() for r in v.rows], LOO_COLUMNS + (("role", "role"),), fmt))
            return 0

        def table(rows) -> str:
            return render([dict(r.to_dict(), measured_ms=f"{r.measured_ms:.3f}",
                                predicted_ms=f"{r.predicted_ms:.3f}", error=f"{100 * r.error:+.1f} %")
                           for r in rows], LOO_COLUMNS, fmt)

        print(f"{v.headline()}; {len(v.skipped)} point(s) left out")
        if v.configurations:
            print(table(v.configurations))
        print(f"\n{v.inputs_line()}")
        if v.calibration_inputs:
            print(table(v.calibration_inputs))
        return 0
    if not args.model:
        raise UserError("predict needs a MODEL, or --validate RUN, --published or --list")
    report = prediction_report(PredictRequest.from_namespace(args))
    if fmt == "json":
        print(json.dumps(report, indent=2))
        return 0
    rows = report["rows"]
    if fmt == "table":
        i = report["inputs"]
        print(f"{i['model']} on {i['device']} x {i['gpus_per_node']} per node ({i['links']}), "
              f"{i['algorithm']} all-reduce, batch {i['batch_per_gpu']} per GPU, {i['precision']}, "
              f"{i['bucketing']} buckets, overlap {i['overlap']:.2f}, overhead {i['overhead_ms']:.2f} ms"
              + (f", global batch {i['global_batch']} (strong scaling)" if i["global_batch"] else ""))
        for note in report["notes"]:
            print(f"  {note}")
        rows = [_pretty(r) for r in rows]
    print(render(rows, COLUMNS, fmt))
    return 0
