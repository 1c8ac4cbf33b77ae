"""The paper's 1-D toy study (Walder & Karkhanis, arXiv:2505.15201, Sec. 5.1 and Appendix C).

Policy x ~ N(theta, 0.1^2), reward g(x) = x^2 on [0, 1] and 0 above the cliff at 1 (eq. 35),
objective maxg@k(theta) (eq. 11). Modules, each usable on its own:

- :mod:`~pkpo.toy.landscape`: exact maxg@k(theta), its derivative and theta*(k) (Figure 1);
- Figure 2, the rank weights C(i-1, k-1)/C(n, k), is :func:`pkpo.maxg_at_k_weights`;
- :mod:`~pkpo.toy.estimators`: the seven gradient estimators compared in Figure 4;
- :mod:`~pkpo.toy.fig4_variance`: their variance and mean at one (n, k, theta) (Figure 4);
- :mod:`~pkpo.toy.fig5_transformed`: binned transformed rewards of uniform rewards (Figure 5);
- :mod:`~pkpo.toy.training`: toy gradient ascent on theta with any estimator (not in the paper);
- :mod:`~pkpo.toy.study`, :mod:`~pkpo.toy.figures`, :mod:`~pkpo.toy.report`, :mod:`~pkpo.toy.cli`:
  the ``pkpo toy`` command that runs all of it (see docs/toy.md).

Nothing is imported here, so ``import pkpo.toy.landscape`` does not pull in matplotlib.
"""
