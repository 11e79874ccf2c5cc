"""course_lib: the helper library of the course "Sequence models, from RNN to ViT".

One module per concept, in the order of the chapters. A module imports only modules on earlier
lines of this table, or to its left on the same line across a "<" (never across a "|": those
modules are siblings that do not import each other); modules inside a package (kernels/,
grading/) may import one another. ``tests/test_module_order.py`` reads this table and checks
every module's imports against it (and that there is no import cycle):

    utils < data < text < train < checkpoints < results < plot    the toolbox every chapter uses
    rnn                                                 01-02 recurrent networks, LSTM, GRU
    seq2seq                                             03 encoder-decoder, search, metrics
    attention_rnn                                       04 attention in an RNN decoder
    attention                                           05 self-attention, backends, multi-head
    transformer                                         06 the encoder-decoder Transformer
    gpt | bert | t5 | vit                               07-10 the four variants
    kernels                                             11 tiled and Triton attention
    families                                            12 three families on one task at equal budget
    distributed                                         13 data parallelism (appendix)
    grading < grade < doctor                            exercises, self-check, environment check

One exception, by design: ``attention``'s backend dispatch imports ``kernels`` inside the
function that runs the "tiled" or "triton" backend, so chapter 05 never loads chapter 11 (or
Triton) unless that backend is asked for.
"""
__version__ = "0.1.0"
