"""``fastnlp backends``: which kernel backends and matrix libraries load here, and what runs."""
from __future__ import annotations

from ._common import describe_active_backend


def _library_details(name, why) -> str:
    """For a matrix library that loads: its version, threading, and how it runs bfloat16 here."""
    from fastnlp.kernels import dispatch

    if why is not None or name not in dispatch.LIBRARY_BACKENDS:
        return ""
    from fastnlp.kernels.gemm import _libraries

    return f" ({_libraries.describe(name)})"


def _backends(args) -> int:
    import fastnlp

    from fastnlp.kernels import calibration as op_calibration
    from fastnlp.kernels import registry

    if args.calibrate and op_calibration.enabled():
        op_calibration.calibrate(refresh=True)  # before "runs on now", which then shows the new choice
    for name, why in fastnlp.available_backends().items():
        print(f"{name:7s} {'ok' if why is None else 'unavailable: ' + why}{_library_details(name, why)}")
    print(describe_active_backend())
    from fastnlp.kernels import cpu

    cap = cpu.isa_cap()
    if cap is not None:
        print(f"{cpu.ISA_CAP_VARIABLE}={cap}: the compiled kernels' own instruction-set branches go no "
              f"higher than {cap} (the compiler's clones still follow the CPU)")
    print()
    print(registry.matrix())
    print("\nruns on now: " + ", ".join(f"{op} -> {registry.backend_for(op)}" for op in registry.ops()
                                        if registry.spec(op).calibration is None))
    timings = {op: ranking for op, ranking in op_calibration.measurements().items()
               if op in registry.ops() and registry.spec(op).calibration is None}
    if timings:
        print("\nmeasured per op here, microseconds per call at the models' sizes, fastest first")
        for op, ranking in sorted(timings.items()):
            print(f"  {op:26s} " + ", ".join(f"{backend} {seconds * 1e6:.0f}" for backend, seconds in ranking))
    from fastnlp.kernels.gemm import calibration

    measured = calibration.calibrate(refresh=True) if args.calibrate else calibration.measurements()
    print("\nmatrix products (gemm), the library measured fastest per class, GFLOP/s"
          + ("" if measured else ": nothing measured yet (fastnlp backends --calibrate measures now)"))
    for variant, ranking in sorted(measured.items()):
        print(f"  {variant:18s} " + ", ".join(f"{backend} {gflops:.0f}" for backend, gflops in ranking))
    return 0


def register(jobs) -> None:
    backends = jobs.add_parser("backends", help="list the kernel backends, why any does not load, and what runs where",
                               description="List the kernel backends and matrix libraries, why any does not load "
                                           "here, which backend each op runs on now, and the measured matrix "
                                           "product speeds.")
    backends.add_argument("--calibrate", action="store_true",
                          help="time every op's backends and the matrix libraries at the models' sizes now (under "
                               "a minute; do it on a quiet machine) and keep the result for this machine")
    backends.set_defaults(run=_backends)
