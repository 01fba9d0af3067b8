"""``import obskit.auto``: ``obskit.init()`` from environment variables alone.

The only obskit import with an effect. A bad environment variable fails the import with a message
naming the setting, as ``init()`` would.
"""

from obskit._facade import init

init()
