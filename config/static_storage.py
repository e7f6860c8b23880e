"""Production static files: WhiteNoise's compressed, hashed files, with each URL worked out once per process.

The manifest is read when the process starts and does not change while it
serves (a deploy collects the static files, then starts new processes), so the
URL of a name is the same every time it is asked. Working it out (the manifest
lookup, quoting, joining to STATIC_URL) took about 20 microseconds, and an
annotation page asks for ten of them on every open (issue 9).
"""

import functools

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    def url(self, name, force=False):
        return self._cached_url(name, force)

    @functools.lru_cache(maxsize=4096)
    def _cached_url(self, name, force):
        return super().url(name, force)
