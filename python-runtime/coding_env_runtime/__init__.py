"""coding-env Python execution runtime: runs one code cell of an episode in a sandboxed worker.

The contract (event and result fields) is documented in ``python-runtime/README.md``.
"""

import sys

#: Version of the invocation contract (event/result field names).
CONTRACT_VERSION = 1
#: Version of this runtime. Snapshots record it; a snapshot of another major version is refused.
RUNTIME_BASE_VERSION = "1.0.0"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
RUNTIME_VERSION = f"{RUNTIME_BASE_VERSION}+py{PYTHON_VERSION}"

__all__ = ["CONTRACT_VERSION", "PYTHON_VERSION", "RUNTIME_BASE_VERSION", "RUNTIME_VERSION"]
