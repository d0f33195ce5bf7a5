"""lyricnn: chapter 6 of 《动手学深度学习》 (MXNet edition) as a library.

``import lyricnn as d2l`` runs the book's chapter code unchanged: the names
below match the book's helper package ``d2lzh``.
"""
import os as _os
import sys as _sys

# MXNet 1.x sizes its OpenMP pool at half the logical CPUs (it assumes
# hyper-threading), so on a 2-vCPU machine every operator runs on one thread;
# with 2 the GEMMs of these models run about twice as fast.  The variable is
# read once, when MXNet loads: set it only if MXNet is not loaded yet and the
# user has not chosen a value (theirs always wins).
if "mxnet" not in _sys.modules and "OMP_NUM_THREADS" not in _os.environ:
    _os.environ["OMP_NUM_THREADS"] = str(len(_os.sched_getaffinity(0))
                                         if hasattr(_os, "sched_getaffinity")
                                         else _os.cpu_count() or 1)
# libgomp's idle threads spin before sleeping.  When other processes share the
# cores (tests, CI, a notebook beside a run) each parallel region then waits for
# a descheduled partner: at load 7 on 2 vCPUs the scratch RNN took 37 s/epoch
# instead of 0.6 s.  Passive waiting avoids that; results are bit-identical.
# Like OMP_NUM_THREADS it is read once, when MXNet loads.
if "mxnet" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from .checkpoint import CheckpointError, RunConfig, load_checkpoint, save_checkpoint
from .context import resolve_ctx, set_seed, try_all_gpus, try_gpu
from .data import Vocab, load_corpus_chars, load_data_jay_lyrics, read_text
from .deep import (deep_gru, deep_gru_sequence, deep_lstm, deep_lstm_sequence,
                   deep_params_getter, deep_rnn, deep_rnn_sequence, deep_state_initializer,
                   get_deep_params)
from .gated import (get_gru_params, get_lstm_params, gru, gru_sequence, init_gru_state,
                    init_lstm_state, lstm, lstm_sequence)
from .generation import predict_rnn, predict_rnn_gluon
from .gluon_model import RNNModel
from .hub import DATA_HUB, download, locate
from .ngram import NGramCounts, NGramLM, kn_discounts, rank
from .onehot import to_onehot
from .plotting import plot_history
from .sampling import data_iter_consecutive, data_iter_random
from .scoring import log_prob, perplexity_of
from .scratch import get_params, init_rnn_state, params_getter, rnn, rnn_sequence
from .tokenize import EOS, UNK, get_tokenizer, load_ptb
from .training import (GluonLM, History, ScratchLM, TrainingDiverged, evaluate_loss,
                       grad_clipping, perplexity, sgd, train_epochs,
                       train_and_predict_rnn, train_and_predict_rnn_gluon)

__version__ = "0.1.0"
