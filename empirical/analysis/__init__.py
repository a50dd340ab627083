"""Reading results folders: schema, theory at the measured configuration, claims, verdicts, figures."""
