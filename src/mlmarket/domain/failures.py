"""What a tenant may read of a platform error: a FailureReason never names the host's files.

Errors from the platform's own work (an OSError unpacking a model, the engine refusing a
container, a volume that cannot be made) are told in the tenant's FailureReason by what went
wrong, with every host path left out; the whole error goes to the server's log.
"""

from __future__ import annotations

import re

# An absolute path not inside a URI (s3://bucket/key) or a relative one: after a quote, a
# bracket, white space, a colon-space or '=' or at the start.
_HOST_PATH = re.compile(r"""(?:(?<=^)|(?<=[\s'"(\[=]))/(?!/)[^\s'"),;\]]*""")


def public_reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"[Errno {error.errno}] {error.strerror}" if error.errno else error.strerror
    return _HOST_PATH.sub("<host path>", str(error)) or type(error).__name__
