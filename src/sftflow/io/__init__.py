"""Readers and writers at the edge of the pipeline.

Every supported input format is converted to ``Example`` here and nowhere else
(``formats``); containers are read in ``readers``, outputs are written atomically in
``writers``, and each stage's ``manifest.json`` in ``manifest``.
"""

from .formats import EOS_LITERALS, FORMATS, SHAREGPT_ROLES, detect_format, record_to_example
from .manifest import package_versions, sha256_file, write_manifest
from .readers import ReadResult, Rejected, iter_examples, iter_jsonl, load_examples, read_examples
from .writers import write_examples, write_jsonl, write_rejected

__all__ = ["EOS_LITERALS", "FORMATS", "SHAREGPT_ROLES", "ReadResult", "Rejected", "detect_format",
           "iter_examples", "iter_jsonl", "load_examples", "package_versions", "read_examples",
           "record_to_example", "sha256_file", "write_examples", "write_jsonl", "write_manifest",
           "write_rejected"]
