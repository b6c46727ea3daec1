"""The `particles` 0.4 side of bench_particles.py; runs inside its own virtual environment (numpy < 2).

Usage: python _particles_peer.py IN.json OUT.json. The input holds the data and the tasks; the output holds
timings and the raw estimates (log-evidence replicates, particle Gibbs chains), analysed by the caller.
Model (same as the markovppl side): x_0 ~ N(0, 1), x_t ~ N(rho x_{t-1}, sx^2), y_t ~ N(x_t, sy^2).
"""

import json
import sys
import time

import numpy as np
import particles
from particles import distributions as dists
from particles import mcmc
from particles import state_space_models as ssms


class LGSSM(ssms.StateSpaceModel):
    default_params = {"rho": 0.9, "sx": 1.0, "sy": 0.5}

    def PX0(self):
        return dists.Normal(loc=0.0, scale=1.0)

    def PX(self, t, xp):
        return dists.Normal(loc=self.rho * xp, scale=self.sx)

    def PY(self, t, xp, x):
        return dists.Normal(loc=x, scale=self.sy)

    def upper_bound_log_pt(self, t):
        return -0.5 * np.log(2 * np.pi * self.sx**2)

    def add_func(self, t, xp, x):       # h = sum_t x_t (particles calls it with t = 0 for x_0 too)
        return x


class FixedThetaPG(mcmc.ParticleGibbs):
    """particles' ParticleGibbs with the parameters held fixed: every iteration is one CSMC sweep
    (update_states) followed by backward sampling."""

    def update_theta(self, theta, x):
        return theta


def pf_task(ssm, y, task):
    fk = ssms.Bootstrap(ssm=ssm, data=y)
    out = {"N": task["N"], "T": len(y), "log_z": [], "times": []}
    for r in range(task["reps"]):
        np.random.seed(1000 + r)
        pf = particles.SMC(fk=fk, N=task["N"], resampling="systematic", ESSrmin=0.5)
        t0 = time.perf_counter()
        pf.run()
        out["times"].append(time.perf_counter() - t0)
        out["log_z"].append(float(pf.logLt))
    return out


def pg_task(ssm_params, y, task):
    np.random.seed(7)
    prior = dists.StructDist({k: dists.Dirac(loc=v) for k, v in ssm_params.items()})
    theta0 = np.array([tuple(ssm_params.values())], dtype=[(k, float) for k in ssm_params])
    pg = FixedThetaPG(niter=task["sweeps"], ssm_cls=LGSSM, prior=prior, data=y, theta0=theta0, Nx=task["N"],
                      backward_step=True, store_x=True)
    t0 = time.perf_counter()
    pg.run()
    elapsed = time.perf_counter() - t0
    xs = np.array([np.asarray(x, dtype=float).reshape(len(y)) for x in pg.chain.x])   # (sweeps, T)
    return {"N": task["N"], "T": len(y), "sweeps": task["sweeps"], "seconds": elapsed,
            "x0": xs[:, 0].tolist(), "xmid": xs[:, len(y) // 2].tolist(), "xlast": xs[:, -1].tolist(),
            "xsum": xs.sum(1).tolist()}


def paris_task(ssm, y, task):
    from particles import collectors

    fk = ssms.Bootstrap(ssm=ssm, data=y)
    out = {"N": task["N"], "estimates": [], "times": []}
    for r in range(task["reps"]):
        np.random.seed(2000 + r)
        pf = particles.SMC(fk=fk, N=task["N"], resampling="multinomial", ESSrmin=1.0,
                           collect=[collectors.Paris(Nparis=2)])
        t0 = time.perf_counter()
        pf.run()
        out["times"].append(time.perf_counter() - t0)
        out["estimates"].append(float(np.asarray(pf.summaries.paris[-1]).reshape(-1)[0]))
    return out


def main():
    spec = json.load(open(sys.argv[1]))
    params = spec["params"]
    ssm = LGSSM(**params)
    from importlib.metadata import version

    results = {"versions": {"particles": version("particles"), "numpy": np.__version__,
                            "python": sys.version.split()[0]}}
    for task in spec["tasks"]:
        y = np.asarray(spec["data"][str(task["T"])], dtype=float)
        if task["kind"] == "pf":
            results.setdefault("pf", []).append(pf_task(ssm, y, task))
        elif task["kind"] == "pg":
            results.setdefault("pg", []).append(pg_task(params, y, task))
        elif task["kind"] == "paris":
            results.setdefault("paris", []).append(paris_task(ssm, y, task))
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
