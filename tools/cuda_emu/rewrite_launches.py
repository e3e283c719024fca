#!/usr/bin/env python3
"""cuda_emu source rewrite: a .cu/.cuh file -> plain C++ for the host emulator.

  name<<<grid, block[, smem[, stream]]>>>(args)   (also name<T><<<...>>>)
      -> ::emu::Launch(name, "name", grid, block[, smem[, stream]])(args)
  extern __shared__ T name[];
      -> T* name = reinterpret_cast<T*>(::emu::dynamic_smem());
  __shared__ T name[dims];
      -> a reference to this block's slot of shared memory (poisoned per block)

Usage: rewrite_launches.py IN OUT
"""
import re
import sys

src = open(sys.argv[1]).read()

LAUNCH = re.compile(r'((?:::)?[A-Za-z_][\w:]*(?:\s*<[^<>;()]*>)?)\s*<<<(.*?)>>>\s*\(', re.S)
src, n_launch = LAUNCH.subn(lambda m: '::emu::Launch(%s, "%s", %s)(' % (m.group(1), re.sub(r'\s+', ' ', m.group(1)), m.group(2)), src)

EXTERN = re.compile(r'extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w:<>]*)\s+(?:__align__\(\s*\d+\s*\)\s+)?(\w+)\s*\[\s*\]\s*;')
src = EXTERN.sub(lambda m: '%s* %s = reinterpret_cast<%s*>(::emu::dynamic_smem());' % (m.group(1), m.group(2), m.group(1)), src)

STATIC = re.compile(r'__shared__\s+(?:__align__\(\s*(\d+)\s*\)\s+)?([A-Za-z_][\w:<>, ]*?)\s+(?:__align__\(\s*(\d+)\s*\)\s+)?(\w+)\s*((?:\[[^\]]*\]\s*)*);')


def shared(m):
    align, typ, align2, name, dims = m.group(1) or m.group(3), m.group(2), None, m.group(4), m.group(5).strip()
    t = name + '_emu_t'
    al = 'alignof(%s)' % t if not align else 'std::max<size_t>(%s, alignof(%s))' % (align, t)
    return ('static const int %s_emu_site = ::emu::new_shared_site(); using %s = %s %s; '
            '%s& %s = *reinterpret_cast<%s*>(::emu::shared_site(%s_emu_site, sizeof(%s), %s));'
            % (name, t, typ, dims, t, name, t, name, t, al))


src, n_shared = STATIC.subn(shared, src)
if '__shared__' in re.sub(r'//.*', '', src):
    sys.exit('%s: a __shared__ declaration the rewrite does not understand' % sys.argv[1])
if '<<<' in re.sub(r'//.*', '', src):
    sys.exit('%s: a launch the rewrite does not understand' % sys.argv[1])
open(sys.argv[2], 'w').write('#line 1 "%s"\n' % sys.argv[1] + src)
