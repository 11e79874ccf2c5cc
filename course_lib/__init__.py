"""course_lib: the helper library of the course "Sequence models, from RNN to ViT".

One module per concept, each importing only earlier ones:
utils -> data, text -> rnn -> ... -> attention -> kernels; train, plot and grading serve them all.
"""
__version__ = "0.1.0"
