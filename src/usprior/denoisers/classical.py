"""The classical baselines (:mod:`usprior.baselines`) as denoiser factories, frame by frame.

Each factory's options are the baseline's keyword parameters (its docstring says what they
mean); ``sigma``, where the baseline has one, is the call-time noise level. NLM, TV and BM3D
model additive noise and take float frames outside [0, 1] as they come.
"""

from __future__ import annotations

from usprior import baselines
from usprior.baselines.classical import ADDITIVE_BOUNDS
from usprior.denoisers.base import function_factory

nlm = function_factory(baselines.nlm, ADDITIVE_BOUNDS)
tv = function_factory(baselines.tv, ADDITIVE_BOUNDS)
bm3d = function_factory(baselines.bm3d, ADDITIVE_BOUNDS)
lee = function_factory(baselines.lee)
kuan = function_factory(baselines.kuan)
frost = function_factory(baselines.frost)
srad = function_factory(baselines.srad)
obnlm = function_factory(baselines.obnlm)
wnnm = function_factory(baselines.wnnm)
