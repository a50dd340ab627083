"""Read results folders and compare them with theory: schema, theory bridge, claims, verdicts, figures, pages.

Only reads what ``empirical.run`` wrote (pandas, scipy, matplotlib and ``theory``; never torch). No engine
module imports this package.
"""
