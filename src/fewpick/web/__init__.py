"""The pages fewpick serves on this machine: the labelling page and the exploration page, their server (one
secret per run, same-origin checks, loopback by default) and the pages themselves as static files."""
