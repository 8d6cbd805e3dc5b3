"""Quality: frame arithmetic and checks, model-free clip metrics, fidelity against exact, previews."""
