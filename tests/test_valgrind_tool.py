"""tools/valgrind.py (`make valgrind`) tells ourloop's memcheck errors from
the interpreter's. The memcheck run itself is too slow for the suite: CI
runs `make valgrind`; here its report reading is checked on crafted
reports."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))

import valgrind  # noqa: E402

HEAD = '<?xml version="1.0"?>\n<valgrindoutput>\n<protocolversion>4</protocolversion>\n'


def error(kind, *objs, what='what'):
    frames = ''.join(f'<frame><ip>0x1</ip><obj>{obj}</obj><fn>f{i}</fn></frame>'
                     for i, obj in enumerate(objs))
    if kind.startswith('Leak_'):
        body = f'<xwhat><text>{what}</text></xwhat>'
    else:
        body = f'<what>{what}</what>'
    return f'<error><unique>0x1</unique><tid>1</tid><kind>{kind}</kind>{body}<stack>{frames}</stack></error>\n'


CORE = '/src/ourloop/_core.cpython-311-x86_64-linux-gnu.so'
PY = '/usr/lib/libpython3.11.so.1.0'


@pytest.mark.parametrize('kind', ['InvalidRead', 'InvalidWrite', 'InvalidFree', 'UninitCondition',
                                  'Leak_DefinitelyLost'])
def test_errors_through_ourloop_count(tmp_path, kind):
    path = tmp_path / 'memcheck.1.xml'
    path.write_text(HEAD + error(kind, PY, CORE, PY) + '</valgrindoutput>\n')
    mine, others = valgrind.parse([str(path)])
    assert [entry[0] for entry in mine] == [kind] and others == []


def test_libuv_counts_as_ours(tmp_path):
    path = tmp_path / 'memcheck.1.xml'
    path.write_text(HEAD + error('InvalidWrite', '/usr/lib/x86_64-linux-gnu/libuv.so.1.0.0')
                    + '</valgrindoutput>\n')
    mine, _ = valgrind.parse([str(path)])
    assert len(mine) == 1


def test_ourloop_deep_in_the_stack_does_not_count(tmp_path):
    # Python code the loop runs: the loop's frames are far down.
    path = tmp_path / 'memcheck.1.xml'
    path.write_text(HEAD + error('UninitValue', PY, PY, PY, PY, PY, CORE, CORE, PY)
                    + '</valgrindoutput>\n')
    mine, others = valgrind.parse([str(path)])
    assert mine == [] and len(others) == 1


def test_interpreter_errors_and_other_kinds_do_not_count(tmp_path):
    path = tmp_path / 'memcheck.1.xml'
    path.write_text(HEAD + error('UninitValue', PY, PY) + error('Leak_PossiblyLost', CORE)
                    + error('Leak_StillReachable', CORE) + '</valgrindoutput>\n')
    mine, others = valgrind.parse([str(path)])
    assert mine == []
    assert [entry[0] for entry in others] == ['UninitValue']


def test_unterminated_child_report_is_read(tmp_path):
    # A forked child killed before exec leaves its file unterminated.
    first = tmp_path / 'memcheck.1.xml'
    first.write_text(HEAD + '</valgrindoutput>\n')
    child = tmp_path / 'memcheck.2.xml'
    child.write_text(HEAD + error('InvalidRead', CORE) + '<error><unique>0x2</unique>')
    mine, _ = valgrind.parse([str(first), str(child)])
    assert [entry[0] for entry in mine] == ['InvalidRead']
