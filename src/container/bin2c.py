#!/usr/bin/env python3
# bin2c.py IN OUT NAME: OUT is a C file defining `const unsigned char NAME[]` and `NAME_len`.
import sys

data = open(sys.argv[1], 'rb').read()
name = sys.argv[3]
with open(sys.argv[2], 'w') as f:
    f.write('/* generated from %s by bin2c.py */\n#include <stddef.h>\n' % sys.argv[1].split('/')[-1])
    f.write('const unsigned char %s[] = {\n' % name)
    for i in range(0, len(data), 16):
        f.write('\t' + ', '.join('0x%02x' % b for b in data[i:i + 16]) + ',\n')
    f.write('};\nconst size_t %s_len = %d;\n' % (name, len(data)))
