"""File-system measurements shared by the API and the runtime."""
from __future__ import annotations

import os


def dir_size(path: str) -> int:
    """moby's directory.Size: bytes of everything but directories, each inode counted once."""
    total, seen, stack = 0, set(), [path]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue                                  # gone while walking: not counted
        with it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if st.st_size and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total
