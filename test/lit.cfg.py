# -*- Python -*-
import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "GALVATRON"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test", ".pbtxt"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.galvatron_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%galvatron_src_root", config.galvatron_src_root))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

tool_dirs = [config.galvatron_tools_dir, config.llvm_tools_dir]
tools = ["galvatron-opt", "galvatron-translate", "galvatron-eval", "galvatron-run"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
llvm_config.add_tool_substitutions(["not", "count", "split-file"],
                                   [config.llvm_tools_dir])
llvm_config.with_environment("PATH", config.galvatron_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

# %memory_limit caps the memory of the commands after it on the RUN line, so
# that a tool reading without end fails instead of filling the machine. An
# AddressSanitizer build reserves terabytes of shadow address space, which a
# virtual-memory ulimit forbids, so there ASan's own cap on one allocation
# does it (an allocation above it is a report, and so a failure).
if "address" in getattr(config, "galvatron_sanitizers", ""):
    config.available_features.add("asan")
    config.substitutions.append(
        ("%memory_limit",
         'export ASAN_OPTIONS="$ASAN_OPTIONS:max_allocation_size_mb=4000";'))
else:
    config.substitutions.append(("%memory_limit", "ulimit -v 4000000;"))

# The CUDA backend: 'cuda' where this build has it, 'cuda-device' where a
# device is visible too (tests that need one say REQUIRES: cuda-device and
# are reported unsupported elsewhere, never passed).
if getattr(config, "galvatron_have_cuda", "") in ("ON", "1", "TRUE"):
    config.available_features.add("cuda")
    import subprocess
    try:
        if subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                          timeout=30).returncode == 0:
            config.available_features.add("cuda-device")
    except (OSError, subprocess.TimeoutExpired):
        pass

# Multi-rank tests run under MPI (REQUIRES: mpi); %mpirun carries the flags
# this machine needs (test/CMakeLists.txt).
if getattr(config, "galvatron_mpirun", ""):
    config.available_features.add("mpi")
    # Each job gets Open MPI session directories of its own, apart from the
    # other jobs lit runs at the same time and from other suites' (see
    # test/Equivalence).
    config.substitutions.append(("%mpirun", "%s %s" % (
        os.path.join(config.test_source_root, "mpirun-own-session.sh"),
        config.galvatron_mpirun)))
