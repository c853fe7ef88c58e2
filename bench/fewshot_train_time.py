"""How long the few-shot picker trains on a large particle with several large pre-training micrographs: the case
that must stay within 5 minutes on 2 cores (108 px particles, five 4096² micrographs, 15 exemplars), timed
stage by stage as `fewpick fewshot train` runs it (with the command line's allocator setting unless
`--allocator default`).

    python bench/fewshot_train_time.py            # writes bench/results/fewshot_train_time.{json,md}
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import write_results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--diameter", type=float, default=108.0)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--micrographs", type=int, default=5)
    ap.add_argument("--exemplars", type=int, default=15)
    ap.add_argument("--work", type=Path, default=HERE / "work" / "fewshot_train_time")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--allocator", choices=["cli", "default"], default="cli",
                    help="cli: keep freed memory for reuse, as the command line does (fewpick.allocator); default: "
                         "the C library's own behaviour")
    args = ap.parse_args()
    if args.allocator == "cli":
        from fewpick.allocator import keep_freed_memory

        keep_freed_memory()

    from fewpick.io import read_micrograph, read_picks
    from fewpick.pickers.fewshot.distill import distill, teacher_data
    from fewpick.pickers.fewshot.settings import FewShotSettings
    from fewpick.pickers.fewshot.windows import prepare
    from fewpick.simulate import SimpleMicrographConfig, write_simulated_micrographs

    T = importlib.import_module("fewpick.pickers.fewshot.train")  # the module (the package exports its train())
    mics = args.work / f"d{args.diameter:g}_s{args.size}"
    if not (mics / f"sim_{args.micrographs - 1:03d}.mrc").is_file():
        cfg = SimpleMicrographConfig(size=(args.size, args.size), diameter=args.diameter, n_particles=500, snr=0.01)
        write_simulated_micrographs(mics, args.micrographs, cfg, seed=3)
    ims = [read_micrograph(mics / f"sim_{i:03d}.mrc") for i in range(args.micrographs)]
    truth = read_picks(mics / "sim_000_truth.star")
    margin = 0.7 * args.diameter
    inside = truth[truth.x.between(margin, args.size - margin) & truth.y.between(margin, args.size - margin)]
    exemplars = inside.iloc[: args.exemplars]
    s = FewShotSettings(diameter=args.diameter)
    stages = {}
    t = t0 = time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        stages[name] = round(now - t, 1)
        t = now

    prepared = [prepare(im, s.scale) for im in ims]
    lap("read and resample")
    on_reference = exemplars.assign(micrograph=ims[0].name)
    s, estimated, beside = T.counted(s, ims, prepared[0].shape, on_reference, "cpu")
    lap("count (general model)")
    net, info = T.pretrain(ims, s, prepared=prepared, device="cpu")
    lap("pre-training")
    model = T.finetune(ims[0], exemplars, s, net=net, pretrained=info, prepared=prepared[0], device="cpu")
    lap("fine-tuning")
    data = teacher_data(model, ims, s.distill_windows, s.threads)
    lap("teacher scores")
    model.fast_net, model.fast_info = distill(model, ims, device="cpu", data=data)
    lap("fast network")
    T.finish_count(model, ims[0], ims[1:], on_reference, estimated, beside)
    lap("count (own scores) and default cut")
    total = round(time.perf_counter() - t0, 1)
    rows = "\n".join(f"| {k} | {v:.1f} |" for k, v in stages.items())
    table = (f"`fewshot train` on a {args.diameter:g} px particle ({args.exemplars} exemplars), pre-trained on "
             f"{args.micrographs} simulated {args.size}² micrographs, every default: seconds per stage on the CPU "
             f"(the bar: 5 minutes in all); allocator: {args.allocator}.\n\n| stage | seconds |\n|---|---|\n{rows}\n| **total** | **{total:.1f}** |")
    write_results("fewshot_train_time", {"stages_s": stages, "total_s": total, "allocator": args.allocator,
                                         "diameter": args.diameter,
                                         "size": args.size, "micrographs": args.micrographs,
                                         "agreement": model.fast_info.get("agreement")}, table, args.results)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
