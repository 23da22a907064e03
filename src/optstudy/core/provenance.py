"""What ran where: device, CPU capability, versions, git state, and the precision actually used.

Every run record and benchmark report carries this, so that a figure can be traced to the machine
and code that made it. The machines this is developed on differ (an AMD EPYC with AVX-512 and
native bf16, and one with AVX2 only, where bf16 runs about 8x slower than fp32), so the CPU's
instruction-set capability is recorded beside its name.
"""
import platform
import subprocess
import sys
from pathlib import Path

import torch

from optstudy.core.cli import UserError

REPO = Path(__file__).resolve().parents[3]      # src/optstudy/core/provenance.py -> the repository
PRECISIONS = ("fp32", "bf16", "auto")
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")   # the flags that decide CPU speed here


def pick_device(name):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (use auto, cpu, cuda, cuda:N or mps)") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        raise UserError(f"--device {name}: no such device on this machine")
    return device


def cpu_name():
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_flags():
    """The CPU_FEATURES this CPU has (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    present = set(line.split(":", 1)[1].split())
    return [f for f in CPU_FEATURES if f in present]


def native_bf16(device):
    """Whether bf16 is fast here: a GPU that supports it, or a CPU with bf16 instructions."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & set(cpu_flags()))
    return False


def resolve_precision(requested, device):
    """fp32 or bf16. 'auto' picks bf16 only where it is fast; an explicit bf16 where it is not
    warns once, in one line, because on an AVX2-only CPU it runs several times slower."""
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested == "bf16" and device.type == "cpu" and not native_bf16(device):
        print(f"warning: --precision bf16 on a CPU without native bf16 ({cpu_name()}) is emulated and runs "
              "several times slower than fp32; use --precision auto or fp32", file=sys.stderr)
    return requested


def describe_device(device):
    info = {"type": device.type, "threads": torch.get_num_threads(), "host": platform.node()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    else:
        info["name"] = cpu_name()
    info["cpu"] = {"name": cpu_name(), "capability": torch.backends.cpu.get_cpu_capability(), "flags": cpu_flags()}
    return info


def versions():
    from importlib.metadata import version    # not `import torchvision`: that alone takes ~3 s here
    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": version("torchvision")}


def git_state():
    def git(*cmd):
        out = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    try:
        commit = git("rev-parse", "HEAD")
        return {"commit": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))} if commit else None
    except (OSError, subprocess.SubprocessError):
        return None
