#!/usr/bin/env python3
"""Fill vendor/libuv from a source archive when the submodule is not checked out.

    python tools/vendor_libuv.py            # unpack if vendor/libuv is empty
    python tools/vendor_libuv.py --check    # only say what would be used

Release wheels link the vendored libuv (the git submodule vendor/libuv) into
the extension. Where the submodule cannot be cloned (no network), the same
tree comes from a `git archive` of libuv's release tag:

  * $LIBUV_ARCHIVE, when set, else
  * ../shared/deps/libuv-v<version>.tar.gz, relative to the repository's
    parent directory (the layout of the machines that build offline).

The archive must be the pinned commit's tree: `git archive` writes the commit
it archived into the tar's pax header (what `git get-tar-commit-id` reads),
and that commit must be the one the repository pins, the submodule's gitlink
(`git ls-tree HEAD vendor/libuv`), which the comment in .gitmodules repeats
(and must agree with). The version in the archive's include/uv/version.h
must be the tag's. The archive is then unpacked into vendor/libuv (its top
directory stripped); setup.py builds whatever vendor/libuv holds.

Exit status: 0 when vendor/libuv holds libuv afterwards, 1 with a message
otherwise. Standard library only; runs on every Python ourloop supports.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENDOR = os.path.join(ROOT, 'vendor', 'libuv')
GITMODULES = os.path.join(ROOT, '.gitmodules')
# Files whose presence means vendor/libuv holds libuv (as setup.py checks).
MARKERS = ('include/uv.h', 'src/uv-common.c', 'src/unix/core.c')


class Error(Exception):
    pass


def say(msg):
    print('vendor_libuv: ' + msg, flush=True)


def vendored_present(path=VENDOR):
    return all(os.path.isfile(os.path.join(path, m)) for m in MARKERS)


def header_version(path):
    """The x.y.z of include/uv/version.h under path, or None."""
    try:
        with open(os.path.join(path, 'include', 'uv', 'version.h')) as f:
            text = f.read()
    except OSError:
        return None
    parts = [re.search(r'#define\s+UV_VERSION_%s\s+(\d+)' % p, text) for p in
             ('MAJOR', 'MINOR', 'PATCH')]
    if not all(parts):
        return None
    return '.'.join(m.group(1) for m in parts)


def pinned_from_gitmodules(path=GITMODULES):
    """(tag, commit) from the comment above [submodule "vendor/libuv"], e.g.
    `# libuv, vendored as a submodule: tag v1.51.0 (5152db2...)`."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, None
    m = re.search(r'tag\s+(v\d+\.\d+\.\d+)\s+\(([0-9a-f]{40})\)', text)
    return (m.group(1), m.group(2)) if m else (None, None)


def pinned_from_git(root=ROOT):
    """The submodule's gitlink commit, or None outside a git checkout."""
    if not os.path.exists(os.path.join(root, '.git')) or shutil.which('git') is None:
        return None
    try:
        out = subprocess.run(['git', '-C', root, 'ls-tree', 'HEAD', 'vendor/libuv'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, check=False).stdout
    except OSError:
        return None
    m = re.match(r'160000 commit ([0-9a-f]{40})\s', out)
    return m.group(1) if m else None


def pinned(root=ROOT):
    """(tag, commit) the repository pins; Error when its two records differ."""
    tag, commit = pinned_from_gitmodules(os.path.join(root, '.gitmodules'))
    git_commit = pinned_from_git(root)
    if git_commit and commit and git_commit != commit:
        raise Error('the vendor/libuv gitlink is %s but the .gitmodules comment says %s: '
                    'update the comment with the submodule' % (git_commit, commit))
    commit = git_commit or commit
    if tag is None or commit is None:
        raise Error('cannot tell which libuv this repository pins (no gitlink for '
                    'vendor/libuv and no "tag vX.Y.Z (<commit>)" comment in .gitmodules)')
    return tag, commit


def default_archive(tag, root=ROOT):
    return os.path.join(os.path.dirname(root), 'shared', 'deps', 'libuv-%s.tar.gz' % tag)


def find_archive(tag, root=ROOT, environ=os.environ):
    """The archive to unpack: $LIBUV_ARCHIVE or the default path."""
    env = environ.get('LIBUV_ARCHIVE', '').strip()
    default = default_archive(tag, root)
    if env:
        if not os.path.isfile(env):
            raise Error('LIBUV_ARCHIVE=%s: no such file' % env)
        return env
    if os.path.isfile(default):
        return default
    raise Error(
        'vendor/libuv is empty and there is no libuv source archive to fill it from.\n'
        '  looked for: %s\n'
        '  Either check out the submodule:  git submodule update --init vendor/libuv\n'
        '  or point LIBUV_ARCHIVE at a `git archive` of libuv %s (a .tar.gz):\n'
        '      LIBUV_ARCHIVE=/path/to/libuv-%s.tar.gz make wheel' % (default, tag, tag))


def check_archive(archive, tag, commit):
    """Verify that archive is `git archive` of commit (libuv tag); return the
    name of its top directory."""
    try:
        tf = tarfile.open(archive)
    except (OSError, tarfile.TarError) as exc:
        raise Error('%s is not a readable tar archive: %s' % (archive, exc)) from None
    with tf:
        got = tf.pax_headers.get('comment')
        if got is None:
            raise Error('%s carries no commit id in its pax header, so it cannot be checked '
                        'against the pinned commit %s; make it with `git archive`'
                        % (archive, commit))
        if got != commit:
            raise Error('%s is `git archive` of commit %s, not of the pinned %s (libuv %s)'
                        % (archive, got, commit, tag))
        names = tf.getnames()
        tops = {n.split('/', 1)[0] for n in names}
        if len(tops) != 1:
            raise Error('%s does not hold one top directory (%s)' % (archive, sorted(tops)[:5]))
        top = tops.pop()
        for m in MARKERS + ('include/uv/version.h', 'LICENSE'):
            if top + '/' + m not in names:
                raise Error('%s has no %s: not a libuv source tree' % (archive, m))
        for member in tf.getmembers():
            parts = member.name.split('/')
            if member.name.startswith('/') or '..' in parts:
                raise Error('%s: unsafe member name %r' % (archive, member.name))
            if member.issym() or member.islnk():
                target = os.path.normpath(os.path.join(os.path.dirname(member.name),
                                                       member.linkname))
                if target.startswith('..') or os.path.isabs(member.linkname):
                    raise Error('%s: link %r points outside the tree' % (archive, member.name))
    return top


def unpack(archive, top, dest=VENDOR):
    """Unpack archive's top directory as dest (which must be empty or absent)."""
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.libuv-', dir=parent)
    try:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, 'data_filter'):
                tf.extractall(tmp, filter='data')
            else:  # Python < 3.8.17 / 3.9.17 / 3.10.12 / 3.11.4: checked above
                tf.extractall(tmp)
        if os.path.isdir(dest):
            os.rmdir(dest)   # the empty submodule directory
        os.replace(os.path.join(tmp, top), dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure(check_only=False, root=ROOT, environ=os.environ):
    """Make vendor/libuv hold the pinned libuv; return a one-line description."""
    dest = os.path.join(root, 'vendor', 'libuv')
    if vendored_present(dest):
        how = 'git submodule' if os.path.exists(os.path.join(dest, '.git')) else 'unpacked tree'
        return 'vendor/libuv holds libuv %s (%s)' % (header_version(dest) or '?', how)
    if os.path.isdir(dest) and os.listdir(dest):
        raise Error('vendor/libuv is neither empty nor a libuv tree (no %s); '
                    'remove its contents and run this again' % ', '.join(MARKERS))
    tag, commit = pinned(root)
    archive = find_archive(tag, root, environ)
    top = check_archive(archive, tag, commit)
    if check_only:
        return 'would unpack %s (libuv %s, commit %s)' % (archive, tag, commit)
    unpack(archive, top, dest)
    version = header_version(dest)
    if 'v' + str(version) != tag:
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest, exist_ok=True)
        raise Error('%s unpacked libuv %s, but the pinned tag is %s' % (archive, version, tag))
    return 'unpacked %s into vendor/libuv (libuv %s, commit %s)' % (archive, version, commit)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--check', action='store_true',
                    help='verify the archive but do not unpack it')
    args = ap.parse_args(argv)
    try:
        say(ensure(check_only=args.check))
    except Error as exc:
        print('vendor_libuv: error: %s' % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
