"""The CUDA kernels of kernels/ compiled with g++ and run on CPU threads (tests/test_cuda_emulation.py)."""
