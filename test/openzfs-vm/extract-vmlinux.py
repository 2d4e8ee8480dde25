"""Writes the ELF kernel inside a zstd-compressed bzImage: usage extract-vmlinux.py <bzImage> <out>."""
import subprocess
import sys

MAGIC = b'\x28\xb5\x2f\xfd'
data = open(sys.argv[1], 'rb').read()
at = data.find(MAGIC)
while at >= 0:
    out = subprocess.run(['zstd', '-d', '-c'], input=data[at:], capture_output=True).stdout
    if out[:4] == b'\x7fELF':
        open(sys.argv[2], 'wb').write(out)
        sys.exit(0)
    at = data.find(MAGIC, at + 1)
sys.exit('no zstd-compressed ELF kernel in ' + sys.argv[1])
