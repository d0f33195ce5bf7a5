"""What the benchmarks print about the machine they ran on, and PyTorch's BLAS on it
(standard library only)."""
import os
import platform
import shutil
import subprocess


def _cpuinfo(key):
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_model():
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_vendor():
    """``'GenuineIntel'``, ``'AuthenticAMD'``, … (``/proc/cpuinfo``); ``''`` when unknown."""
    return _cpuinfo("vendor_id")


#: PyTorch's CPU wheel multiplies with Intel's MKL (statically linked, its symbols
#: exported), which asks this function whether the CPU is Intel's and on any other
#: takes slower code paths whatever the CPU supports. On an AMD EPYC with AVX-512
#: (2026-12-07) torch's (700, 650) x (650, 10,000) product ran at 96 GF/s on one thread
#: as shipped and 191 with this function preloaded (docs/RESULTS.md, "PyTorch's BLAS on
#: an AMD EPYC"). MXNet's wheel multiplies with oneDNN and OpenBLAS, which choose by
#: the CPU's instruction sets, so it is unaffected.
_INTEL_CPU_TRUE = "int mkl_serv_intel_cpu_true(void) { return 1; }\n"
TORCH_MKL_MODES = ("auto", "shipped", "intel")
#: The ``--torch-mkl`` flag's help, in every benchmark that runs PyTorch.
TORCH_MKL_HELP = ("PyTorch's BLAS (Intel's MKL): 'intel' makes it take its Intel code paths "
                  "(on other CPUs it takes slower ones), 'shipped' leaves it as pip installs "
                  "it; 'auto' (default): 'intel' on a non-Intel x86 CPU, so PyTorch runs at "
                  "its best")


def torch_mkl_env(mode, directory):
    """``(env, note)``: the environment for PyTorch's processes (``None``: inherit this
    one) and one line saying what it is.

    ``mode``: ``'shipped'`` (PyTorch as pip installs it), ``'intel'`` (MKL made to take
    its Intel code paths: a one-function library compiled into ``directory`` and
    preloaded), ``'auto'`` (``'intel'`` on an x86 CPU that is not Intel's, where the two
    differ, else ``'shipped'``). Without a C compiler ``'intel'`` falls back to shipped,
    and the note says so: a benchmark's comparison is only as fair as its note."""
    if mode not in TORCH_MKL_MODES:
        raise ValueError(f"torch MKL mode must be one of {TORCH_MKL_MODES}, got {mode!r}")
    vendor = cpu_vendor()
    if mode == "auto":
        mode = "intel" if vendor and vendor != "GenuineIntel" else "shipped"
    if mode == "shipped":
        return None, f"PyTorch's MKL as shipped (CPU vendor {vendor or 'unknown'})"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None, ("PyTorch's MKL as shipped: no C compiler to build the Intel-path "
                      f"preload (CPU vendor {vendor or 'unknown'}), so on a non-Intel CPU "
                      "PyTorch runs below its best here")
    source = os.path.join(directory, "intel_cpu_true.c")
    library = os.path.join(directory, "libintel_cpu_true.so")
    with open(source, "w", encoding="utf-8") as f:
        f.write(_INTEL_CPU_TRUE)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", library, source], check=True)
    env = dict(os.environ)
    env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD", "")]))
    return env, (f"PyTorch's MKL made to take its Intel code paths on this {vendor} CPU "
                 f"(LD_PRELOAD of mkl_serv_intel_cpu_true; --torch-mkl shipped for PyTorch "
                 "as pip installs it)")
