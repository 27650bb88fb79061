"""Placeholder: accelerate() lands with the nn layer."""

def accelerate(model, verbose=True):
    return model
