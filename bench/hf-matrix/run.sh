#!/bin/bash
# The Hugging Face family matrix (models/hf): see run.py. Needs Python 3 only.
#   bench/hf-matrix/run.sh [--families F...] [--variants V...] [--state-dict] [--markdown] [--details]
exec python3 "$(dirname "$0")/run.py" "$@"
