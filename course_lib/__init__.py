"""course_lib: the helper library of the course "Sequence models, from RNN to ViT".

One module per concept, each importing only earlier ones:
utils -> data, text -> rnn -> attention -> seq2seq -> transformer; kernels/ (tiled and Triton
attention, importing only utils) sits below attention, which dispatches to it; train, plot and
grading serve every chapter.
"""
__version__ = "0.1.0"
