"""`fplnet models`: every registered model with its parameter count, the paper's figure and MACs,
so a reader can check Tables VI-X at a glance."""
from __future__ import annotations

from ..complexity import count_macs, count_params
from ..io import atomic_write_json
from ..models import create_model, get_model_entry, list_models
from .arguments import image_size, positive_int, writable_file


def add_arguments(parser):
    parser.add_argument("--num-classes", type=positive_int, default=20,
                        help="classifier width (default 20: the paper's 19 Cityscapes classes + void)")
    parser.add_argument("--size", type=image_size, default="512x1024", help="input HxW for MACs (default 512x1024)")
    parser.add_argument("--filter", default="", help="only names containing this text")
    parser.add_argument("--json", type=writable_file, metavar="FILE", help="also write the table as JSON")


def model_rows(num_classes: int = 20, size=(512, 1024), pattern: str = "") -> list[dict]:
    rows = []
    for name in list_models(pattern):
        entry = get_model_entry(name)
        model = create_model(name, num_classes=num_classes)
        params = count_params(model)
        paper = entry.paper_params
        rows.append({
            "name": name, "params": params, "paper_params": paper, "paper_source": entry.paper_source,
            "diff_vs_paper": None if paper is None else params - paper,
            "macs_g": round(count_macs(model, size) / 1e9, 3), "paper_miou": entry.paper_miou,
            "description": entry.description,
        })
    return rows


def run(args):
    size = args.size
    if not list_models(args.filter):
        raise ValueError(f"--filter {args.filter!r} matches no model; registered: {', '.join(list_models())}")
    rows = model_rows(args.num_classes, size, args.filter)
    header = f"{'model':32s} {'params':>10s} {'paper':>10s} {'source':>16s} {'GMACs':>8s}  description"
    print(f"{len(rows)} models, {args.num_classes} classes, MACs at {size[0]}x{size[1]}")
    print(header)
    print("-" * len(header))
    for r in rows:
        paper = "-" if r["paper_params"] is None else (
            f"{int(r['paper_params']):,}" if r["paper_params"] % 10000 else f"{r['paper_params'] / 1e6:.2f}M")
        print(f"{r['name']:32s} {r['params']:>10,d} {paper:>10s} {r['paper_source']:>16s} "
              f"{r['macs_g']:>8.2f}  {r['description']}")
    if args.json:
        atomic_write_json(args.json, {"num_classes": args.num_classes, "size": list(size), "models": rows})
    return 0
