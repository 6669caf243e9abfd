# bench_app's Hydra plugins. Hydra finds plugins only in the `hydra_plugins` namespace package (which
# must have no __init__.py of its own); bench_app installs this folder with it (setup.cfg).
