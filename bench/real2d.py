"""The 2D pickers on real annotated micrographs, side by side with Topaz 0.3.20 (CPU).

    bash bench/install_topaz.sh                       # Topaz into bench/work/topaz-venv, once
    .venv/bin/python bench/real2d.py [--sets 10059 10947 apoferritin_ab apoferritin_ba]
                                     [--tools pu fewshot topaz] [--labels 15 all] [--seeds 0 1 2] [--keep]
    .venv/bin/python bench/real2d.py --variant NAME --pu-args "--bin 5" --tools pu   # a variant, in its own results
    .venv/bin/python bench/real2d.py --out real2d --keep --merge OTHER... --table-only  # one table of several runs

The real sets live in ``$FEWPICK_REAL_DATA`` (default: ``../shared/data`` beside the repository; see its README):
EMPIAR-10059 (TRPV1, crowded, D = 36 px) and EMPIAR-10947 (D = 60 px) as CryoPPP's denoised 8-bit PNGs with
train/test splits, and EMPIAR-10146 apoferritin (raw 16-bit frame sums, D = 68 px, two annotated micrographs:
train on one, test on the other, both ways).

Every tool gets the same labels: ``--labels 15`` draws 15 of the training micrographs' particles at random
(seeds 0–2), ``all`` uses every training label. Each tool is run as a user would, through its command line, with
one command line per set: the same options everywhere except the particle diameter and the expected number of
particles per micrograph (the mean count of the training micrographs). The few-shot picker gets 15 exemplars on
one training micrograph (those whose window fits, as a user would click them) and the expected count, and
pre-trains on the training micrographs (apoferritin: the training micrograph and the 18 unannotated ones). Topaz 0.3.20: its own preprocessing
(downsampled so the particle radius is 3–8 px, its per-micrograph GMM normalisation), its pre-trained ResNet8
(its default), GE-binomial with ``--pi`` for a 2D disk of radius 3, ``--topaz-updates`` updates of 256 regions
(its default 10 × 1000 takes hours on 2 cores), ``extract -t -20`` so its whole PR curve counts. With every
particle labelled the data are positive-negative: Topaz's ``--method PN`` with π the labelled fraction (its
GE-binomial cannot run there: Topaz 0.3.20 counts (2r+1)× a 2D disk's pixels per label, so its labelled fraction
exceeds 1 on these crowded sets and the PN fallback it picks diverges).

Scores: AUPRC and best F1 with matching radius D/2 over all test micrographs; box F1 (boxes of D, IoU ≥ 0.5) at
the picker's own automatic threshold (Topaz has none: its box F1 at its best threshold); train seconds, pick
seconds per micrograph (start-up included), peak memory. Writes bench/results/real2d{,_VARIANT}.{json,md} and
bench/results/real2d_pr_SET.png. Runs are kept under bench/work/real2d/ and reused with --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, peak_rss_mib_of, write_results  # noqa: E402
from fewpick.evaluate import duplicates, evaluate  # noqa: E402
from fewpick.io import read_picks, write_picks  # noqa: E402
from fewpick.ops.peaks import ball  # noqa: E402

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "real2d"
TOPAZ = HERE / "work" / "topaz-venv" / "bin" / "topaz"
FEWPICK = Path(sys.executable).parent / "fewpick"
DATA = Path(os.environ.get("FEWPICK_REAL_DATA", HERE.parent.parent / "shared" / "data"))
SETS_ALL = ("10059", "10947", "apoferritin_ab", "apoferritin_ba")


@dataclass
class RealSet:
    name: str
    diameter: float
    train: list[Path]  # micrographs the labels come from
    test: list[Path]
    train_truth: pd.DataFrame
    test_truth: pd.DataFrame
    pretrain: list[Path] = field(default_factory=list)  # unlabeled micrographs for self-supervised pre-training

    @property
    def expected(self) -> int:
        return int(round(len(self.train_truth) / len(self.train)))

    @property
    def reference(self) -> Path:
        """The few-shot reference: the training micrograph with the most particles."""
        counts = self.train_truth.micrograph.value_counts()
        return next(p for p in self.train if p.stem == counts.index[0])

    @property
    def topaz_factor(self) -> int:
        return max(1, int(round(self.diameter / 2 / 5)))  # particle radius ~5 px after downsampling


def _csv_truth(csv: Path, stem: str) -> pd.DataFrame:
    d = pd.read_csv(csv)
    x = d["x"] if "x" in d else d["X-Coordinate"]
    y = d["y"] if "y" in d else d["Y-Coordinate"]
    return pd.DataFrame({"micrograph": stem, "x": x.astype(float), "y": y.astype(float)})


def load_set(name: str) -> RealSet:
    if name in ("10059", "10947"):
        root = DATA / f"cryoppp_{name}"
        split = {s: sorted((root / s / "images").glob("*.png")) for s in ("train", "test")}
        truth = {s: pd.concat([_csv_truth(root / s / "labels" / f"{p.stem}.csv", p.stem) for p in split[s]],
                              ignore_index=True) for s in split}
        return RealSet(name, {"10059": 36.0, "10947": 60.0}[name], split["train"], split["test"], truth["train"],
                       truth["test"], pretrain=split["train"])
    if name in ("apoferritin_ab", "apoferritin_ba"):
        root = DATA / "empiar10146_apoferritin"
        a, b = "May08_03.13.02", "May08_07.10.35"
        tr, te = (a, b) if name.endswith("ab") else (b, a)
        img = {k: root / "images" / f"{k}.bin_avg.png" for k in (a, b)}
        unlabeled = [p for p in sorted((root / "images").glob("*.png")) if p.stem.split(".bin")[0] not in (a, b)]
        return RealSet(name, 68.0, [img[tr]], [img[te]], _csv_truth(root / "labels" / f"{tr}.csv", img[tr].stem),
                       _csv_truth(root / "labels" / f"{te}.csv", img[te].stem), pretrain=[img[tr], *unlabeled])
    raise SystemExit(f"unknown set {name!r}; choose from {', '.join(SETS_ALL)}")


def draw_labels(rs: RealSet, n: str, seed: int) -> pd.DataFrame:
    return rs.train_truth if n == "all" else rs.train_truth.sample(int(n), random_state=seed).reset_index(drop=True)


def draw_exemplars(rs: RealSet, seed: int, m: int = 15) -> pd.DataFrame:
    """``m`` particles of the reference whose few-shot window (1.2 diameters) fits: those a user would click."""
    from fewpick.io.images import image_info

    h, w = image_info(rs.reference).shape
    on_ref = rs.train_truth[rs.train_truth.micrograph == rs.reference.stem]
    half = 0.6 * rs.diameter + 2
    drawn = on_ref.sample(frac=1.0, random_state=seed)  # a random order; its first m are sample(m, seed)
    fits = (drawn.x > half) & (drawn.y > half) & (drawn.x < w - 1 - half) & (drawn.y < h - 1 - half)
    return drawn[fits].head(m).reset_index(drop=True)


def scores(picks: pd.DataFrame, rs: RealSet, threshold: float | None = None) -> dict:
    centre = evaluate(picks, rs.test_truth, radius=rs.diameter / 2)
    box = evaluate(picks, rs.test_truth, box=rs.diameter, threshold=threshold)
    out = {"auprc": centre["auprc"], "best_f1": centre["best"]["f1"] if centre["best"] else 0.0,
           "recall_all_picks": centre["all_picks"]["recall"], "box_best_f1": box["best"]["f1"] if box["best"] else 0.0,
           "curve": {k: v[:: max(1, len(v) // 400)] for k, v in centre["curve"].items()}}
    if threshold is not None:
        a = box["at_threshold"]
        out.update(box_precision=a["precision"], box_recall=a["recall"], box_f1=a["f1"], n_auto=a["n_pred"])
    return out


def default_cut_scores(every: pd.DataFrame, default: pd.DataFrame, rs: RealSet) -> dict:
    """What a model's default cut gives against the best it could: AUPRC (centre within D/2) and best box F1
    (boxes of D, IoU ≥ 0.5) of ``every`` peak; box F1, picks, the ratio to the best and the duplicates (picks
    beyond the first within D/2 of one true particle) of the ``default`` picks."""
    box = evaluate(every, rs.test_truth, box=rs.diameter)
    at = evaluate(default, rs.test_truth, box=rs.diameter)["all_picks"] if len(default) else {"f1": 0.0, "n_pred": 0}
    return {"auprc": evaluate(every, rs.test_truth, radius=rs.diameter / 2)["auprc"], "best_box_f1": box["best"]["f1"],
            "default_box_f1": at["f1"], "default_n": int(at["n_pred"]), "ratio": at["f1"] / max(box["best"]["f1"], 1e-9),
            "duplicate_rate": duplicates(default, rs.test_truth, rs.diameter / 2)["rate"]}


def _timed(cmd: list[str]) -> tuple[float, float]:
    try:
        wall, rss, _ = peak_rss_mib_of(cmd)
    except Exception as exc:  # show the tool's own message
        err = getattr(exc, "stderr", "") or ""
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{err[-3000:]}") from None
    return wall, rss


def run_pu(rs: RealSet, labels: pd.DataFrame, run: Path, seed: int, extra: list[str],
           model_from: Path | None = None, previous: dict | None = None) -> dict:
    import torch

    write_picks(labels, run / "labels.star")
    model = run / "pu.pt"
    refit_s = None
    if model_from is not None:  # a network trained by an earlier run, with the steps after training redone
        from fewpick.io import read_micrograph
        from fewpick.pickers import pu

        t0 = time.time()
        m = pu.refit(pu.load_model(model_from, "cpu"), [read_micrograph(p) for p in rs.train], labels)
        pu.save_model(m, model)
        refit_s = time.time() - t0
        t_s, t_mib = previous["train_s"] + refit_s, previous["train_peak_mib"]
    else:
        t_s, t_mib = _timed([str(FEWPICK), "train", *map(str, rs.train), "--labels", str(run / "labels.star"),
                             "-d", f"{rs.diameter:g}", "-n", str(rs.expected), "--seed", str(seed), "--out",
                             str(model), *extra])
    p_s, p_mib = _timed([str(FEWPICK), "pick", *map(str, rs.test), "--model", str(model), "-t", "-1e9",
                         "--out", str(run / "pu_picks.star")])
    bundle = torch.load(model, map_location="cpu", weights_only=False)
    thr = float(bundle["threshold"])
    more = {"refit_s": refit_s} if refit_s is not None else {}
    if bundle.get("agreement") is not None:
        more.update(agreement=float(bundle["agreement"]), correlation_weight=float(bundle["correlation_weight"]))
    return {**scores(read_picks(run / "pu_picks.star"), rs, thr), "threshold": thr, **more, "train_s": t_s,
            "train_peak_mib": t_mib, "pick_s_per_micrograph": p_s / len(rs.test), "pick_peak_mib": p_mib}


def run_fewshot(rs: RealSet, exemplars: pd.DataFrame, run: Path, seed: int, extra: list[str],
                pick_extra: list[str] = (), model_from: Path | None = None, previous: dict | None = None) -> dict:
    write_picks(exemplars, run / "exemplars.star")
    model = run / "fewshot.pt"
    if model_from is not None:  # re-pick a model trained by an earlier run (its training figures are kept)
        import shutil

        shutil.copy(model_from, model)
        t_s, t_mib = previous["train_s"], previous["train_peak_mib"]
    else:
        t_s, t_mib = _timed([str(FEWPICK), "fewshot", "train", str(rs.reference), "--exemplars", str(run / "exemplars.star"),
                         "-d", f"{rs.diameter:g}", *[a for p in rs.pretrain for a in ("--pretrain-images", str(p))], "-n", str(rs.expected),
                             "--seed", str(seed), "--out", str(model), *extra])
    _timed([str(FEWPICK), "fewshot", "pick", *map(str, rs.test), "--model", str(model), "-t", "-1e9",
            "--out", str(run / "fewshot_all.star"), *pick_extra])
    p_s, p_mib = _timed([str(FEWPICK), "fewshot", "pick", *map(str, rs.test), "--model", str(model),
                         "--out", str(run / "fewshot_auto.star"), *pick_extra])
    auto = read_picks(run / "fewshot_auto.star")
    box = evaluate(auto, rs.test_truth, box=rs.diameter)
    out = scores(read_picks(run / "fewshot_all.star"), rs)
    out.update(box_precision=box["all_picks"]["precision"], box_recall=box["all_picks"]["recall"],
               box_f1=box["all_picks"]["f1"], n_auto=box["all_picks"]["n_pred"])
    return {**out, "train_s": t_s, "train_peak_mib": t_mib, "pick_s_per_micrograph": p_s / len(rs.test),
            "pick_peak_mib": p_mib}


def _topaz_mrc(rs: RealSet, split: str) -> Path:
    """Topaz 0.3.20 cannot read PNGs: the micrographs as float32 MRC (made once, not timed)."""
    import mrcfile
    from PIL import Image

    files = rs.train if split == "train" else rs.test
    mrc = WORK / "topaz_data" / rs.name / f"{split}_mrc"
    if not (mrc.is_dir() and len(list(mrc.glob("*.mrc"))) == len(files)):
        mrc.mkdir(parents=True, exist_ok=True)
        for p in files:
            mrcfile.new(mrc / f"{p.stem}.mrc", np.asarray(Image.open(p), dtype=np.float32), overwrite=True)
    return mrc


def _topaz_preprocess(rs: RealSet, split: str, out: Path) -> tuple[float, float]:
    """Topaz's own preprocessing (downsampling, GMM normalisation) of one split into ``out``: (seconds, MiB)."""
    out.mkdir(parents=True, exist_ok=True)
    return _timed([str(TOPAZ), "preprocess", "-s", str(rs.topaz_factor), "-d", "-1", "--num-workers", "0", "-o",
                   str(out), *map(str, sorted(_topaz_mrc(rs, split).glob("*.mrc")))])


def run_topaz(rs: RealSet, labels: pd.DataFrame, run: Path, updates: int) -> dict:
    f = rs.topaz_factor
    pre_train = WORK / "topaz_data" / rs.name / "train_pre"  # shared by the runs of a set
    if not (pre_train.is_dir() and len(list(pre_train.glob("*.mrc"))) == len(rs.train)):
        _topaz_preprocess(rs, "train", pre_train)
    targets = pd.DataFrame({"image_name": labels.micrograph, "x_coord": (labels.x / f).round().astype(int),
                            "y_coord": (labels.y / f).round().astype(int)})
    targets.to_csv(run / "targets.txt", sep="\t", index=False)
    import mrcfile

    shapes = []
    for p in sorted(pre_train.glob("*.mrc")):
        with mrcfile.open(p, header_only=True) as m:
            shapes.append((int(m.header.ny), int(m.header.nx)))
    area = ball(3, 2).sum()
    pi = float(np.mean([rs.expected * area / (h * w) for h, w in shapes]))
    method = "GE-binomial"
    if len(targets) >= len(rs.train_truth):
        # Every particle labelled: positive-negative data, so Topaz's PN method with π = the labelled fraction.
        # Its GE-binomial would not run here: Topaz 0.3.20 counts a label's pixels as (2r+1) times the disk's
        # (stats.pixels_given_radius meshes three axes for a 2D disk), so its labelled fraction exceeds 1 on
        # these crowded sets, it switches to PN with that π, and the negatives' weight 1 - π < 0 drove the loss
        # below -1e12 on every set.
        method = "PN"
        pi = len(targets) * area / sum(h * w for h, w in shapes)
    t_s, t_mib = _timed([str(TOPAZ), "train", "--train-images", str(pre_train), "--train-targets",
                         str(run / "targets.txt"), "--pi", f"{pi:.6f}", "-r", "3", "--method", method, "-d", "-1",
                         "-j", "1", "--num-workers", "0", "--num-epochs", "1", "--epoch-size", str(updates),
                         "--save-prefix", str(run / "topaz"), "-o", str(run / "topaz_log.txt")])
    # picking = Topaz's preprocessing of the test micrographs + extraction (the MRC conversion is not counted)
    pre_test = run / "pre_test"
    pre_s, pre_mib = _topaz_preprocess(rs, "test", pre_test)
    e_s, e_mib = _timed([str(TOPAZ), "extract", "-m", str(run / "topaz_epoch1.sav"), "-r",
                         str(int(round(rs.diameter / 2 / f))), "-x", str(f), "-t", "-20", "-d", "-1", "--num-workers",
                         "0", "-o", str(run / "topaz_picks.txt"), *map(str, sorted(pre_test.glob("*.mrc")))])
    picks = read_picks(run / "topaz_picks.txt")
    out = scores(picks, rs)
    out.update(box_f1=out["box_best_f1"], box_at="best threshold")
    return {**out, "pi": pi, "topaz_method": method, "train_s": t_s, "train_peak_mib": t_mib,
            "pick_s_per_micrograph": (pre_s + e_s) / len(rs.test), "pick_peak_mib": max(pre_mib, e_mib)}


TOOL_NAMES = {"pu": "fewpick PU picker", "fewshot": "fewpick few-shot", "topaz": "Topaz 0.3.20"}


def table(rows: list[dict], variant: str | None) -> str:
    df = pd.DataFrame(rows)
    md = ["| set | labels | tool | AUPRC | best F1 | recall of all picks | box F1, own automatic threshold | train s | "
          "pick s / micrograph | peak MiB train / pick | seeds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {t: i for i, t in enumerate(TOOL_NAMES)}
    for (s, n, tool), g in sorted(df.groupby(["set", "labels", "tool"]),
                                  key=lambda kv: (SETS_ALL.index(kv[0][0]), kv[0][1] == "all", order[kv[0][2]])):
        def ms(k):
            v = g[k].astype(float)
            return f"{v.mean():.3f} ± {np.nan_to_num(v.std()):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
        box = ms("box_f1") + (" (best)" if tool == "topaz" else "")
        mark = ""
        if "model_from" in g and g["model_from"].notna().any():
            mark = " ‡" if tool == "pu" else " †"
        md.append(f"| {s} | {n} | {TOOL_NAMES[tool]}{mark}{' ' + variant if variant and tool != 'topaz' else ''} | "
                  f"{ms('auprc')} | {ms('best_f1')} | {ms('recall_all_picks')} | {box} | {g.train_s.mean():.0f} | "
                  f"{g.pick_s_per_micrograph.mean():.2f} | {g.train_peak_mib.mean():.0f} / {g.pick_peak_mib.mean():.0f} | "
                  f"{len(g)} |")
    return "\n".join(md)


def plot_curves(rows: list[dict], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["set"] == name and r["seed"] == 0 and "curve" in r]
    if not sel:
        return
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=110)
    colours = {"pu": "C0", "fewshot": "C2", "topaz": "C3"}
    for r in sel:
        ax.step(r["curve"]["recall"], r["curve"]["precision"], where="post", color=colours[r["tool"]],
                ls="-" if r["labels"] != "all" else "--",
                label=f"{TOOL_NAMES[r['tool']]}, {r['labels']} labels (AUPRC {r['auprc']:.3f})")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{name}: test micrographs, seed 0")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"real2d_pr_{name}.png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS_ALL))
    ap.add_argument("--tools", nargs="+", default=["pu", "fewshot", "topaz"], choices=list(TOOL_NAMES))
    ap.add_argument("--labels", nargs="+", default=["15", "all"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--topaz-updates", type=int, default=300)
    ap.add_argument("--variant", default=None, help="name of an ablation row (results go to real2d_VARIANT.*)")
    ap.add_argument("--pu-args", default="", help="extra options for 'fewpick train'")
    ap.add_argument("--fewshot-args", default="", help="extra options for 'fewpick fewshot train'")
    ap.add_argument("--fewshot-pick-args", default="", help="extra options for 'fewpick fewshot pick'")
    ap.add_argument("--fewshot-models-from", default=None,
                    help="re-pick the few-shot models of these results (e.g. real2d_base) instead of training")
    ap.add_argument("--pu-models-from", nargs="*", default=[],
                    help="re-use the PU networks these earlier runs trained (15 labels, all labels): the steps after "
                         "training are redone, the training figures kept")
    ap.add_argument("--keep", action="store_true", help="reuse runs whose results are already in the JSON")
    ap.add_argument("--out", default=None, help="results name (default real2d or real2d_VARIANT)")
    ap.add_argument("--merge", nargs="*", default=[], help="also take the runs of these results (names in bench/results)")
    ap.add_argument("--table-only", action="store_true", help="run nothing: write the table of the runs kept and merged")
    args = ap.parse_args()
    name = args.out or ("real2d" + (f"_{args.variant}" if args.variant else ""))
    path = RESULTS / f"{name}.json"
    previous = json.loads(path.read_text())["runs"] if (args.keep and path.is_file()) else []
    for other in args.merge:  # runs made by another process (e.g. Topaz alongside fewpick)
        theirs = json.loads((RESULTS / f"{other}.json").read_text())["runs"]
        keys = {(r["set"], r["tool"], str(r["labels"]), r["seed"]) for r in theirs}
        previous = [r for r in previous if (r["set"], r["tool"], str(r["labels"]), r["seed"]) not in keys] + theirs
    key = lambda r: (r["set"], r["tool"], str(r["labels"]), r["seed"])  # noqa: E731
    done = {key(r): r for r in previous}
    rows = list(previous)
    sets = {s: load_set(s) for s in args.sets}
    for rs in sets.values():
        print(f"{rs.name}: D = {rs.diameter:g} px, {len(rs.train)} training micrographs "
              f"({len(rs.train_truth)} particles, {rs.expected} expected per micrograph), "
              f"{len(rs.test)} test ({len(rs.test_truth)})", flush=True)
    # 15 labels first, seed by seed across the sets (a run cut short still covers every set); all labels: one run
    jobs = [(n, seed, s, tool) for n in args.labels for seed in (args.seeds if n != "all" else args.seeds[:1])
            for s in args.sets for tool in args.tools if not (tool == "fewshot" and n == "all")]
    for n, seed, set_name, tool in jobs:
        rs, k = sets[set_name], (set_name, tool, n, seed)
        if k in done or args.table_only:
            continue
        run = WORK / name / set_name / f"{tool}_{n}_s{seed}"
        run.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        if tool == "pu":
            src = prev = None
            for other in args.pu_models_from:
                cand = WORK / other / set_name / f"pu_{n}_s{seed}" / "pu.pt"
                found = [x for x in json.loads((RESULTS / f"{other}.json").read_text())["runs"] if key(x) == k]
                if cand.is_file() and found:
                    src, prev = cand, found[0]
                    break
            if args.pu_models_from and src is None:
                print(f"  {set_name} pu {n} labels seed {seed}: no earlier network; skipped", flush=True)
                continue
            r = run_pu(rs, draw_labels(rs, n, seed), run, seed, shlex.split(args.pu_args), src, prev)
            if src is not None:
                r["model_from"] = src.parent.parent.parent.name
        elif tool == "fewshot":
            src = None
            if args.fewshot_models_from:
                src = WORK / args.fewshot_models_from / set_name / f"fewshot_15_s{seed}" / "fewshot.pt"
                before = json.loads((RESULTS / f"{args.fewshot_models_from}.json").read_text())["runs"]
                prev = next(x for x in before if key(x) == k)
            r = run_fewshot(rs, draw_exemplars(rs, seed), run, seed, shlex.split(args.fewshot_args),
                            shlex.split(args.fewshot_pick_args), src, prev if src else None)
            if src:
                r["model_from"] = args.fewshot_models_from
        else:
            r = run_topaz(rs, draw_labels(rs, n, seed), run, args.topaz_updates)
        r = {"set": set_name, "tool": tool, "labels": n, "seed": seed, **r}
        rows = [x for x in rows if key(x) != k] + [r]
        done[k] = r
        print(f"  {set_name} {tool} {n} labels seed {seed}: AUPRC {r['auprc']:.3f}, best F1 {r['best_f1']:.3f}, "
              f"box F1 {r.get('box_f1', float('nan')):.3f}, recall(all) {r['recall_all_picks']:.2f}, "
              f"{time.time() - t0:.0f} s", flush=True)
        _write(name, rows, args)
    _write(name, rows, args)


def _write(name: str, rows: list[dict], args) -> None:
    intro = ("Real annotated micrographs; matching radius D/2 for AUPRC and best F1; box F1: boxes of D, IoU ≥ 0.5, at "
             "the picker's own automatic threshold (Topaz: at its best threshold, an upper bound). Labels: 15 drawn "
             "from the training micrographs (seeds 0–2) or all of them; few-shot: 15 exemplars on one training "
             f"micrograph. Topaz 0.3.20: pre-trained ResNet8 (its default), GE-binomial (all labels: PN, see the script), "
             f"{args.topaz_updates} updates. "
             "Times on 2 cores include each command's start-up; the PU picker's and the few-shot picker's runs had "
             "the two cores to themselves, Topaz's shared them with another job (training at 1–2 threads), so its "
             "are upper bounds.")
    if any(r.get("model_from") and r["tool"] == "pu" for r in rows):
        intro += ("\n\n‡ the networks that the earlier runs trained (the same labels, seed and settings; their "
                  "training figures), with the steps after training redone by this version: the test of the labels' "
                  "rotational average and the default cut (`pu.refit`, 0.3–3.5 s, added to train s).")
    if any(r.get("model_from") and r["tool"] == "fewshot" for r in rows):
        intro += ("\n\n† few-shot models trained before `fewshot train --expected-particles` existed (the same "
                  "exemplars, seed and settings otherwise), picked with `--min-distance 0.75`: the suppression that "
                  "training with these sets' expected counts now stores (0.375 diameters, half the former 0.75).")
    write_results(name, {"runs": rows, "topaz_updates": args.topaz_updates, "pu_args": args.pu_args,
                         "fewshot_args": args.fewshot_args, "fewshot_pick_args": args.fewshot_pick_args}, intro + "\n\n" + table(rows, args.variant))
    if not args.variant:
        for s in {r["set"] for r in rows}:
            plot_curves(rows, s)


if __name__ == "__main__":
    main()
