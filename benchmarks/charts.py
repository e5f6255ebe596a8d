#!/usr/bin/env python3
"""The charts of benchmark runs: one per suite, and the headline chart.

    python benchmarks/charts.py                      # make charts: the latest runs -> docs/_static/bench/
    python benchmarks/charts.py RUN_DIR [RUN_DIR ...] --to DIR
    python benchmarks/bench_all.py --publish docs/_static/bench   # a run, then this

bench_all.py draws `<suite>.png` next to each suite's JSON in its run
directory ($BENCH_OUT) with suite_chart(). `make charts` (this script's
main) makes the charts the documentation shows: for each suite the newest
`<suite>.json` among the run directories given (default: every run under
~/.cache/ourloop-bench/, where `make bench` writes), drawn again into
docs/_static/bench/<suite>.png, and headline.png, which the README shows:

* left, the instructions each loop executes per operation (callgrind:
  `instructions.py`'s loop-core workloads and `pingpong_instructions.py`'s
  round trips, `make bench-full`'s `instructions` and `roundtrip` suites),
  which are the same on any machine under any load;
* right, when an `http` run is there, the HTTP servers' CPU time per
  request under wrk (`http_bench.py`), with the load the machine was under.

Every loop's bar is relative to asyncio's (asyncio's count or cost over the
loop's: longer is better). Every title names the date, the CPU, Python,
libuv and ourloop's commit; a chart of a wall-clock suite also names the
load average before and after its run (the charts of `instructions`,
`roundtrip` and `syscalls` count, and `memory` measures RSS, which the load
does not move). The caption is also in each PNG's "Description" text chunk.

The PNGs are drawn at 80-90 dpi and reduced to a 32-colour palette
(Pillow, which matplotlib needs anyway): about 10-30 KB each, small
enough to commit. Needs matplotlib (the bench extra).
"""

import argparse
import glob
import io
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_DEST = os.path.join(ROOT, 'docs', '_static', 'bench')
DEFAULT_RUNS = os.path.join(os.path.expanduser('~'), '.cache', 'ourloop-bench')

# Suites whose figures the machine's load does not move: callgrind counts,
# strace counts, RSS per object.
LOAD_FREE = {
    'instructions': 'instruction counts (callgrind): the same under any load',
    'roundtrip': 'instruction counts (callgrind): the same under any load',
    'syscalls': 'system call counts (strace): the same under any load',
    'memory': 'RSS per object: the load does not move it',
}
# The order of the docs page; bench_all.py's suites.
SUITE_ORDER = ('core', 'instructions', 'roundtrip', 'echo', 'ceiling', 'latency', 'memory',
               'udp', 'tls', 'http', 'subprocess', 'syscalls')
HEADLINE_LOOPS = ('asyncio', 'uvloop', 'rloop', 'ourloop')
PALETTE_COLOURS = 32


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _first(load):
    """'9.60 8.17 5.42' (or a number) -> '9.6': the 1-minute load average."""
    try:
        return f'{float(str(load).split()[0]):.1f}'
    except (ValueError, IndexError):
        return '?'


def describe(data):
    """What a run's JSON says about where and when it ran: a dict of
    date, machine (CPU, cores, Python, libuv), commit and load."""
    data = data or {}
    info = data.get('machine') or {}
    date = str(data.get('date') or '?').replace('T', ' ')[:16]
    machine = (f"{info.get('cpu', '?')}, {info.get('cores', '?')} cores, "
               f"{info.get('python', '?')}, libuv {info.get('libuv (ourloop)') or '?'}")
    commit = str(info.get('git') or '?')
    load = data.get('load_average') or {}
    load_text = (f"load average {_first(load.get('before'))} before, "
                 f"{_first(load.get('after'))} after" if load else 'load average not recorded')
    return {'date': date, 'machine': machine, 'commit': commit, 'load': load_text}


def _bars(ax, summary, ref, rows=None, annotate=None):
    """Horizontal bars, per row, of each loop's median relative to ref's,
    oriented so that longer is better, min..max as error bars. annotate:
    a loop whose bars get their ratio to that other loop written beside
    them, as (loop, other)."""
    loops = [loop for loop in summary['loops']
             if any(summary['rows'][r].get(loop) for r in summary['rows'])]
    rows = list(rows or summary['rows'])
    higher = summary['higher_is_better']
    width = 0.8 / max(1, len(loops))
    right = 1.0
    for i, loop in enumerate(loops):
        ys, vals, lo, hi = [], [], [], []
        for j, row in enumerate(rows):
            st, base = summary['rows'][row].get(loop), summary['rows'][row].get(ref)
            if not st or not base:
                continue

            def rel(x, base=base):
                return x / base['median'] if higher else base['median'] / x
            v = rel(st['median'])
            a, b = sorted((rel(st['min']), rel(st['max'])))
            ys.append(j + (i - (len(loops) - 1) / 2) * width)
            vals.append(v)
            lo.append(max(0.0, v - a))
            hi.append(max(0.0, b - v))
            right = max(right, v, b)
            if annotate and loop == annotate[0]:
                other = summary['rows'][row].get(annotate[1])
                if other:
                    ratio = (st['median'] / other['median'] if higher
                             else other['median'] / st['median'])
                    ax.annotate(f'{ratio:.2f}x {annotate[1]}', (max(v, b), ys[-1]),
                                xytext=(3, 0), textcoords='offset points', va='center',
                                fontsize=7)
        ax.barh(ys, vals, height=width, xerr=[lo, hi] if any(lo + hi) else None,
                label=loop, capsize=2, error_kw={'elinewidth': 0.8})
    if annotate:        # room for the ratios written beside the bars
        ax.set_xlim(0, right * 1.2)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.axvline(1.0, color='grey', linewidth=0.8)
    ax.tick_params(axis='x', labelsize=8)
    return loops


def _reference(summary):
    loops = summary['loops']
    return summary.get('reference') or ('asyncio' if 'asyncio' in loops else loops[0])


def _save(fig, path, title, caption, dpi):
    """Write fig as a palette PNG with its caption in the text chunks."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi)
    plt.close(fig)
    try:
        from PIL import Image, PngImagePlugin
    except ImportError:     # matplotlib needs Pillow; without it, the plain PNG
        with open(path, 'wb') as f:
            f.write(buf.getvalue())
        return path
    image = Image.open(io.BytesIO(buf.getvalue())).convert('RGB')
    image = image.quantize(colors=PALETTE_COLOURS)
    meta = PngImagePlugin.PngInfo()
    meta.add_text('Title', title)
    meta.add_text('Description', caption)
    meta.add_text('Software', 'ourloop benchmarks/charts.py')
    tmp = path + '.tmp'
    image.save(tmp, format='PNG', optimize=True, pnginfo=meta)
    os.replace(tmp, path)
    return path


def suite_chart(name, summary, data, path):
    """A suite's chart: per row, each loop relative to asyncio (or to the
    suite's reference, e.g. the C server of `ceiling`), min..max as error
    bars; beside it the server CPU per request when the suite has it.
    Returns (path, None), or (None, the reason there is no chart)."""
    try:
        plt = _pyplot()
    except ImportError:
        return None, 'matplotlib is not installed (pip install matplotlib): no chart'
    cpu = (data or {}).get('summary_cpu')
    panels = [summary] + ([cpu] if cpu and cpu.get('rows') else [])
    rows = list(summary['rows'])
    loops = summary['loops']
    height = max(3.0, 1.7 + 0.2 * len(rows) * max(1, len(loops)) / 2)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.5, 4.6 * len(panels) + 1.4), height),
                             sharey=True, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ref = _reference(panel)
        _bars(ax, panel, ref, rows=rows)
        unit = 'server CPU µs per request' if panel is cpu else panel['unit']
        ax.set_xlabel(f"{unit}: the loop's / {ref}'s (longer is better)"
                      if panel['higher_is_better'] and panel is not cpu
                      else f"{unit}: {ref}'s / the loop's (longer is better)", fontsize=8)
    axes[0][-1].legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.0, 1.0))
    d = describe(data)
    load = LOAD_FREE.get(name) or d['load']
    title = f"{name}: {summary['unit']}, {d['date']}, ourloop {d['commit']}"
    fig.suptitle(f"{title}\n{d['machine']}\n{load}", fontsize=9)
    caption = (f"{title}. {d['machine']}; {load}. Each loop's median relative to "
               f"{_reference(summary)}'s, longer is better; error bars: min..max of the "
               f"samples" + ('; right: the server CPU time per request' if len(panels) > 1
                             else '') + '.')
    fig.tight_layout()
    return _save(fig, path, title, caption, dpi=80), None


def _merge(*summaries):
    """One summary of the rows of several (same units, same loops)."""
    out = {'rows': {}, 'loops': [], 'higher_is_better': summaries[0]['higher_is_better'],
           'unit': summaries[0]['unit']}
    for s in summaries:
        for loop in s['loops']:
            if loop not in out['loops']:
                out['loops'].append(loop)
        out['rows'].update(s['rows'])
    return out


def _only_loops(summary, loops):
    """The summary with the columns of loops only, in that order (a run may
    also have compared other builds, ourloop@...)."""
    return dict(summary, loops=[lp for lp in loops if lp in summary['loops']],
                rows={r: {lp: c.get(lp) for lp in loops} for r, c in summary['rows'].items()})


def headline_chart(instructions, roundtrip, http, path):
    """The README's chart: instructions per operation (callgrind) of the
    loop core and of the round trips, and, when http is given, the HTTP
    servers' CPU per request. Each argument is a run's JSON (dict)."""
    plt = _pyplot()
    counted = _only_loops(_merge(instructions['summary'], roundtrip['summary']), HEADLINE_LOOPS)
    panels = [(counted, instructions)]
    cpu = (http or {}).get('summary_cpu')
    if cpu and cpu.get('rows'):
        panels.append((_only_loops(cpu, HEADLINE_LOOPS), http))
    n_rows = len(counted['rows'])
    ratios = [n_rows + 1] + ([len(cpu['rows']) + 1.2] if len(panels) > 1 else [])
    fig, axes = plt.subplots(len(panels), 1, figsize=(8.4, 0.42 * sum(ratios) + 2.0),
                             gridspec_kw={'height_ratios': ratios}, squeeze=False)
    d = describe(instructions)
    captions = []
    for ax, (summary, data) in zip(axes[:, 0], panels):
        _bars(ax, summary, 'asyncio', annotate=('ourloop', 'uvloop'))
        if data is instructions:
            ax.set_title('Instructions per operation (valgrind callgrind; the same on any '
                         'machine, under any load)', fontsize=9, loc='left')
            captions.append(
                'Instructions per operation counted by callgrind (benchmarks/instructions.py, '
                'pingpong_instructions.py: 1 KiB round trips over TCP, UDP datagrams), '
                f"{d['date']}")
        else:
            h = describe(data)
            reps = data.get('reps', '?')
            ax.set_title(f"HTTP hello world, server CPU time per request (wrk, 16 connections)"
                         f"\n{h['date']}, median of {reps} runs; shared machine, "
                         f"{h['load']}", fontsize=9, loc='left')
            captions.append(f"HTTP server CPU time per request (benchmarks/http_bench.py, "
                            f"{h['date']}, median of {reps} runs, {h['load']})")
        ax.set_xlabel("asyncio's count / the loop's (longer is better)" if data is instructions
                      else "asyncio's CPU time / the loop's (longer is better)", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='upper center', bbox_to_anchor=(0.5, 0.935), ncol=len(labels),
               fontsize=8, frameon=False)
    title = 'ourloop, uvloop and rloop relative to asyncio: CPU work per operation'
    fig.suptitle(f"{title}\n{d['date']}, ourloop {d['commit']}; {d['machine']}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.925))
    caption = (f"{title}, ourloop {d['commit']}. {'; '.join(captions)}. {d['machine']}. Each bar: asyncio's figure "
               "over the loop's (longer is better); beside ourloop's bars its ratio to "
               "uvloop's.")
    return _save(fig, path, title, caption, dpi=85)


def png_text(path):
    """{keyword: text} of a PNG's tEXt and iTXt chunks (the title and
    caption _save() writes), read with the standard library alone."""
    out = {}
    with open(path, 'rb') as f:
        if f.read(8) != b'\x89PNG\r\n\x1a\n':
            raise ValueError(f'{path} is not a PNG')
        while True:
            head = f.read(8)
            if len(head) < 8:
                break
            length, kind = struct.unpack('>I4s', head)
            body = f.read(length)
            f.read(4)                                   # CRC
            if kind == b'tEXt':
                key, _, text = body.partition(b'\0')
                out[key.decode('latin-1')] = text.decode('latin-1')
            elif kind == b'iTXt':
                key, _, rest = body.partition(b'\0')
                compressed, rest = rest[0], rest[2:]
                _lang, _, rest = rest.partition(b'\0')
                _translated, _, text = rest.partition(b'\0')
                out[key.decode('latin-1')] = (zlib.decompress(text) if compressed
                                              else text).decode('utf-8')
            elif kind == b'IEND':
                break
    return out


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def latest_runs(sources):
    """{suite: (json path, data)}: for each suite the run whose JSON has the
    latest date, among the run directories in sources."""
    found = {}
    for source in sources:
        for path in glob.glob(os.path.join(source, '*.json')):
            suite = os.path.splitext(os.path.basename(path))[0]
            if suite not in SUITE_ORDER:
                continue
            data = _load(path)
            if not data or 'summary' not in data:
                continue
            if suite not in found or str(data.get('date')) > str(found[suite][1].get('date')):
                found[suite] = (path, data)
    return found


def publish(sources, dest, say=print):
    """Draw the charts of the latest runs in sources into dest; returns the
    paths written. The headline chart needs both callgrind suites."""
    os.makedirs(dest, exist_ok=True)
    runs = latest_runs(sources)
    written = []
    for suite in SUITE_ORDER:
        if suite not in runs:
            continue
        path, data = runs[suite]
        out, why = suite_chart(suite, data['summary'], data, os.path.join(dest, f'{suite}.png'))
        if out:
            written.append(out)
            say(f'{os.path.relpath(out)}: {suite} of {path} '
                f'({os.path.getsize(out) // 1024} KB)')
        else:
            say(why)
            return written
    if 'instructions' in runs and 'roundtrip' in runs:
        http = runs.get('http', (None, None))[1]
        out = headline_chart(runs['instructions'][1], runs['roundtrip'][1], http,
                             os.path.join(dest, 'headline.png'))
        written.append(out)
        say(f'{os.path.relpath(out)}: instructions of {runs["instructions"][0]}, roundtrip '
            f'of {runs["roundtrip"][0]}'
            + (f', http of {runs["http"][0]}' if http else '')
            + f' ({os.path.getsize(out) // 1024} KB)')
    else:
        say('no headline chart: it needs the instructions and roundtrip suites '
            '(make bench-full, or bench_all.py --full --only instructions,roundtrip)')
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('runs', nargs='*', help='run directories (default: every directory under '
                    f'{DEFAULT_RUNS})')
    ap.add_argument('--to', default=DEFAULT_DEST,
                    help='where the charts go (default: docs/_static/bench/)')
    args = ap.parse_args(argv)
    try:
        _pyplot()
    except ImportError:
        print('charts.py: matplotlib is not installed (pip install -e \'.[bench]\')',
              file=sys.stderr)
        return 2
    sources = args.runs or sorted(glob.glob(os.path.join(DEFAULT_RUNS, '*', '')))
    if not sources:
        print(f'charts.py: no runs in {DEFAULT_RUNS}: run make bench first', file=sys.stderr)
        return 2
    written = publish(sources, args.to)
    return 0 if written else 1


if __name__ == '__main__':
    sys.exit(main())
