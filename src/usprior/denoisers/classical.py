"""The classical baselines (:mod:`usprior.baselines`) as denoiser factories, frame by frame.

Each factory's options are the baseline's keyword parameters (its docstring says what they
mean); ``sigma``, where the baseline has one, is the call-time noise level.
"""

from __future__ import annotations

from usprior import baselines
from usprior.denoisers.base import function_factory

nlm = function_factory(baselines.nlm)
tv = function_factory(baselines.tv)
bm3d = function_factory(baselines.bm3d)
lee = function_factory(baselines.lee)
kuan = function_factory(baselines.kuan)
frost = function_factory(baselines.frost)
srad = function_factory(baselines.srad)
obnlm = function_factory(baselines.obnlm)
wnnm = function_factory(baselines.wnnm)
