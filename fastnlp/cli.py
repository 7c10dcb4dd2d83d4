"""Command line: ``fastnlp <job>`` (also ``python -m fastnlp``).

Jobs:
  spiral     train the book's two-layer net on the spiral data (ch. 1)
  backends   list the kernel backends and why any does not load
"""
from __future__ import annotations

import argparse
import sys
import time


def _spiral(args) -> int:
    import fastnlp
    from fastnlp.datasets import load_spiral

    x, t = load_spiral()
    model = fastnlp.TwoLayerNet(2, args.hidden, 3, seed=args.seed)
    trainer = fastnlp.Trainer(model, fastnlp.optim.SGD(lr=args.lr), seed=args.seed)
    start = time.perf_counter()
    history = trainer.fit(x, t, max_epoch=args.epochs, batch_size=args.batch_size, eval_interval=10,
                          progress=not args.quiet)
    print(f"spiral: {args.epochs} epochs in {time.perf_counter() - start:.2f} s, "
          f"final loss {history[-1]:.4f}, training accuracy {model.accuracy(x, t):.1%}")
    if args.plot:
        print(f"loss curve written to {trainer.plot(args.plot)}")
    return 0


def _backends(args) -> int:
    import fastnlp

    for name, why in fastnlp.available_backends().items():
        print(f"{name:7s} {'ok' if why is None else 'unavailable: ' + why}")
    print(f"active: {fastnlp.get_backend()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastnlp", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", help="kernel backend (numpy, numba, cython, cupy)")
    jobs = parser.add_subparsers(dest="job", required=True)

    spiral = jobs.add_parser("spiral", help="train the two-layer net on the spiral data")
    spiral.add_argument("--hidden", type=int, default=10)
    spiral.add_argument("--epochs", type=int, default=300)
    spiral.add_argument("--batch-size", type=int, default=30)
    spiral.add_argument("--lr", type=float, default=1.0)
    spiral.add_argument("--seed", type=int, default=0)
    spiral.add_argument("--plot", help="write the loss curve to this PNG (needs matplotlib)")
    spiral.add_argument("--quiet", action="store_true", help="no progress bar")
    spiral.set_defaults(run=_spiral)

    backends = jobs.add_parser("backends", help="list kernel backends")
    backends.set_defaults(run=_backends)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.backend:
        import fastnlp

        fastnlp.set_backend(args.backend)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
