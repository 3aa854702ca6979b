"""Feast, imported without torch.

Feast imports torch when it is imported (`feast.torch_wrapper`, for tensor-valued on-demand
feature views, which movierec does not define). In a serving replica that costs about 180 MB
of memory and 1.5 s of CPU at start, five times per app. Importing this module first makes
Feast find torch unavailable, as it does on a machine without it; `import torch` still works
afterwards (the pipeline's text embeddings use it).
"""

from __future__ import annotations

import sys

if "feast" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail
    try:
        import feast  # noqa: F401
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
