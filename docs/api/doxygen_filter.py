#!/usr/bin/env python3
"""Doxygen INPUT_FILTER for deviso's headers (docs/api/Doxyfile).

deviso's headers are commented in plain // and /* */ (house style), not in Doxygen's ///. This
filter shows Doxygen the same text as documentation, without changing the headers:
  * the comment that opens a file (before its include guard) documents the file (@file);
  * a comment on lines of its own documents the declaration that follows (// -> ///, /* -> /**);
  * a comment after code on the same line documents that member (// -> ///<, /* -> /**<);
  * clang-tidy's NOLINT markers are dropped.
The line count is kept, so Doxygen's warnings name the header's own lines.
"""
import re
import sys

TRAILING_CXX = re.compile(r'^(?P<code>.*?\S.*?)(?P<ws>\s+)//(?P<text>.*)$')
TRAILING_C = re.compile(r'^(?P<code>.*?\S.*?)(?P<ws>\s+)/\*(?P<text>.*?)\*/\s*$')
NOLINT = re.compile(r'\s*//\s*NOLINT.*$|\s*/\*\s*NOLINT[^*]*\*/')


def esc(text):
    """Comment text as Doxygen should print it: <os>, Result<U>, #ifdef are not markup."""
    text = text.replace('<', '\\<').replace('>', '\\>')
    return re.sub(r'#(?=\w)', r'\\#', text)


def in_string(code):
    return code.count('"') % 2 == 1


def main(path):
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    out = []
    seen_code = False   # anything but comments and blank lines so far
    file_doc = False    # inside the file's opening comment
    in_c_comment = False
    c_file_doc = False
    for line in lines:
        line = NOLINT.sub('', line) if 'NOLINT' in line else line
        s = line.strip()
        if in_c_comment:
            line = esc(line).replace('*\\/', '*/')
            if '*/' in s:
                in_c_comment = False
                if c_file_doc:  # the file's opening comment: its last line says @file
                    line = line.replace('*/', '@file */', 1)
                    c_file_doc = False
            out.append(line)
            continue
        if not seen_code and not file_doc and (s.startswith('//') or s.startswith('/*')):
            file_doc = True
            if s.startswith('/*'):
                out.append(esc(line.replace('/*', '/**', 1)))
                in_c_comment = '*/' not in s
                c_file_doc = True
            else:
                out.append(esc(line.replace('//', '///', 1)))
            continue
        if file_doc and s.startswith('//'):
            out.append(esc(line.replace('//', '///', 1)))
            continue
        if s == '':
            # The file comment ends at the first blank line (its last line says @file).
            if file_doc and out and out[-1].lstrip().startswith('///'):
                out[-1] += ' @file'
            file_doc = False
            out.append(line)
            continue
        if re.match(r'^(//|/\*) ?----', s):  # a section divider, not documentation
            out.append(line)
            continue
        if s.startswith('//'):
            if not s.startswith('///'):
                line = line.replace('//', '///', 1)
            out.append(esc(line))
            continue
        if s.startswith('/*'):
            if not s.startswith('/**'):
                line = line.replace('/*', '/**', 1)
            in_c_comment = '*/' not in s
            out.append(esc(line))
            continue
        seen_code = True
        file_doc = False
        m = TRAILING_CXX.match(line)
        if m and not in_string(m.group('code')):
            line = f"{m.group('code')}{m.group('ws')}///<{esc(m.group('text'))}"
        else:
            m = TRAILING_C.match(line)
            if m and not in_string(m.group('code')):
                line = f"{m.group('code')}{m.group('ws')}/**<{esc(m.group('text'))}*/"
        out.append(line)
    sys.stdout.write('\n'.join(out))


if __name__ == '__main__':
    main(sys.argv[1])
