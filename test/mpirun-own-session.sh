#!/usr/bin/env bash
# Runs the MPI launcher given as arguments with an Open MPI session
# directory base of its own (lit's %mpirun). Two jobs that start together
# under one base both find Open MPI's per-user directory missing, and the
# one whose mkdir comes second fails ("unable to create the desired
# directory ... File exists"); the directory is removed when a job ends, so
# making it beforehand does not help.
set -u
base=$(mktemp -d "${TMPDIR:-/tmp}/galvatron-lit-ompi-XXXXXX") || exit 1
OMPI_MCA_orte_tmpdir_base=$base "$@"
status=$?
rm -rf "$base"
exit $status
