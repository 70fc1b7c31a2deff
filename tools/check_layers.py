#!/usr/bin/env python3
"""Checks DESIGN.md's two hard rules on the source tree and on every compiled file.

1. No translation unit includes both libtorch and protobuf/gRPC headers. Checked twice: on the
   #include lines of each layer (runtime/, client/, proto/ never include torch; models/ and
   samplers/ never include protobuf or gRPC), and on the full, transitive dependency list of
   every translation unit in compile_commands.json (the compiler's own -M output), which also
   catches an include smuggled in through another header.
2. Dependencies point one way: nothing includes actors/ or client/ except themselves (and
   tests), runtime/ and proto/ include nothing from models/, samplers/ or actors/, models/ and
   samplers/ include nothing from runtime/ except runtime/common (the plain C++ Store and
   status helpers).

Exits non-zero with a list of violations.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
TORCH_INCLUDE = re.compile(r'^(torch/|ATen/|c10/)')
PROTO_INCLUDE = re.compile(r'(\.pb\.h$|^grpcpp/|^grpc/|^grpc\+\+/|^google/protobuf/)')
SOURCE_EXT = ('.h', '.hpp', '.cc', '.cpp', '.cu', '.cuh')

# folder -> folders of this repo it may include from
ALLOWED = {
    'proto': {'proto'},
    'runtime': {'runtime', 'proto'},
    # The SDK shares the runtime's channel settings and token handling (runtime/rpc).
    'client': {'client', 'proto', 'runtime/common', 'runtime/rpc'},
    'models': {'models', 'runtime/common'},
    'samplers': {'samplers', 'models', 'runtime/common'},
    'actors': {'actors', 'runtime', 'models', 'samplers', 'proto'},
}
TOP_FOLDERS = ('proto', 'runtime', 'client', 'models', 'samplers', 'actors', 'tests', 'tools')


# Single headers outside a layer's allowed folders that it may still include: plain tables with
# no dependencies (the CLI's --help lists the samplers' names from the one table).
ALLOWED_FILES = {
    'client': {'samplers/sampler_names.h'},
}


def layer_of(path):
    return path.split('/', 1)[0]


def check_sources(root):
    problems = []
    for folder in ALLOWED:
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for name in files:
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding='utf-8', errors='replace') as f:
                    includes = INCLUDE.findall(f.read())
                for inc in includes:
                    if folder in ('runtime', 'client', 'proto') and TORCH_INCLUDE.match(inc):
                        problems.append(f'{rel}: includes libtorch header <{inc}>')
                    if folder in ('models', 'samplers') and PROTO_INCLUDE.search(inc):
                        problems.append(f'{rel}: includes protobuf/gRPC header <{inc}>')
                    top = layer_of(inc)
                    if top in TOP_FOLDERS and top != 'tests':
                        allowed = ALLOWED[folder]
                        if inc in ALLOWED_FILES.get(folder, ()):
                            continue
                        if not any(inc == a or inc.startswith(a + '/') for a in allowed):
                            problems.append(f'{rel}: {folder}/ may not include "{inc}"')
    return problems


def dependency_list(entry):
    args = shlex.split(entry['command']) if 'command' in entry else list(entry['arguments'])
    cleaned = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ('-o', '-MF', '-MT', '-MQ'):
            skip = True
            continue
        if arg in ('-c', '-MD', '-MMD'):
            continue
        cleaned.append(arg)
    # -M lists every header, system ones included; -fpch-deps expands a precompiled header.
    cleaned += ['-M', '-fpch-deps']
    result = subprocess.run(cleaned, cwd=entry['directory'], capture_output=True, text=True)
    if result.returncode != 0:
        return entry['file'], None, result.stderr[-2000:]
    deps = result.stdout.replace('\\\n', ' ').split()
    return entry['file'], deps, None


def is_torch_header(dep):
    return '/torch/include/' in dep and '/google/protobuf/' not in dep


def is_proto_header(dep):
    return dep.endswith('.pb.h') or '/grpcpp/' in dep or '/grpc/' in dep or '/google/protobuf/' in dep


def check_compiled(build_dir):
    path = os.path.join(build_dir, 'compile_commands.json')
    if not os.path.exists(path):
        return [f'{path} is missing: configure with CMAKE_EXPORT_COMPILE_COMMANDS']
    with open(path) as f:
        entries = json.load(f)
    problems = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for file, deps, error in pool.map(dependency_list, entries):
            if error is not None:
                problems.append(f'{file}: could not list its includes: {error}')
                continue
            torch = [d for d in deps if is_torch_header(d)]
            proto = [d for d in deps if is_proto_header(d)]
            if torch and proto:
                problems.append(f'{file}: includes libtorch ({torch[0]}) and protobuf/gRPC '
                                f'({proto[0]}) in one translation unit')
    print(f'checked the transitive includes of {len(entries)} translation units')
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', required=True)
    parser.add_argument('--build')
    args = parser.parse_args()
    problems = check_sources(args.source)
    if args.build:
        problems += check_compiled(args.build)
    for p in problems:
        print('layer rule violated:', p)
    if problems:
        return 1
    print('layer rules hold')
    return 0


if __name__ == '__main__':
    sys.exit(main())
