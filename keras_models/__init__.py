"""The suite's networks in Keras 3 on TensorFlow: build from the spec, move weights to and
from the scratch engine, read a user's ``keras.Sequential`` back into a spec, and train with
the objective and batch order shared by all three frameworks.

Public API
----------
``build(layers, input_shape, *, dtype="float64", l2=0.0, seed=None, name=None)``
    A ``keras.Sequential`` as a Keras user writes it (NHWC), one Keras layer per spec entry.
``from_scratch(model, state)`` / ``to_scratch(model)``
    Copy a scratch ``state_dict()`` into a Keras model / read one back. Bit-exact both ways.
``spec_of(model)`` / ``input_shape_of(model)`` / ``l2_of(model)``
    Read an idiomatic ``keras.Sequential`` back into spec layers, its canonical input shape
    ``(C, H, W)`` or ``(F,)``, and the common ``l2(lambda)`` factor of its kernels.
``forward(model, x)``
    Run a Keras model on canonical NCHW data (checked, transposed once) and return NumPy.
``weight_plan(model)`` / ``to_scratch_array(item, key, value)`` / ``flatten_permutation(chw)``
    The canonical weight layout (:mod:`keras_models.layout`): which layer holds which
    scratch weight, one weight (or gradient) converted to the scratch layout, and the row
    permutation of the Dense after a Flatten.
``Trainer``
    The training contract shared with ``scratch`` and ``torch_models`` (``train_step``,
    ``fit`` through :func:`scratch.trainer.run_epochs`, ``evaluate``, ``predict``,
    ``state_dict``, ``load_state_dict``).

Conventions mapped (see docs/DESIGN.md, 'Canonical layout', 'Padding and pooling', 'The objective and L2')
----------------------------------------------------------------------------------------------------------
* **Layout.** Keras models are NHWC (``data_format="channels_last"``, Keras's default), as a
  Keras user writes them; the canonical data are NCHW. Every function here that takes data
  (``forward``, ``Trainer``) takes canonical NCHW NumPy arrays, checks them like the scratch
  engine does (rank, shape, dtype, finiteness; an NHWC array gets a hint to transpose it) and
  transposes them with ``x.transpose(0, 2, 3, 1)`` once per call, never per batch.
  ``input_shape`` is always the canonical ``(C, H, W)``; the Keras ``Input`` is ``(H, W, C)``.
* **Layers.** Spec entry ``i`` is ``model.layers[i]`` (the ``InputLayer`` is not in
  ``model.layers``). ``Conv2D`` -> ``layers.Conv2D``; ``MaxPool2D`` -> ``layers.MaxPooling2D``;
  ``AvgPool2D`` -> ``layers.AveragePooling2D`` (TensorFlow's "same" average pooling divides
  by the number of real cells, as scratch does); ``Flatten`` -> ``layers.Flatten``;
  ``Dense`` -> ``layers.Dense``; ``Activation`` -> ``layers.Activation`` (``identity`` is
  Keras's ``"linear"``); ``Dropout`` -> ``layers.Dropout``. Layers are named
  ``<kind>_<spec index>`` (``conv2d_0``, ``max_pooling2d_1``, ``dense_3``).
* **leaky_relu.** TensorFlow's ``LeakyRelu`` op stores its slope as a float32 attribute, so a
  stock ``keras.layers.LeakyReLU(negative_slope=0.1)`` multiplies float64 tensors by
  ``float32(0.1) = 0.10000000149...`` (a relative error of 1.5e-8). ``build`` therefore uses
  :class:`ExactLeakyReLU`, a registered ``LeakyReLU`` subclass that applies the slope in the
  layer's compute dtype (``where(x > 0, x, x * slope)``, exactly the scratch formula), both as
  a standalone layer and as the ``activation=`` of a ``Conv2D``/``Dense``. ``spec_of`` reads
  the slope back: exactly from an ``ExactLeakyReLU``, and as ``float(float32(slope))`` (what
  TensorFlow really applies) from a stock ``LeakyReLU`` or the ``"leaky_relu"`` function.
  Fused activations other than leaky_relu are Keras's own functions (``"relu"`` ...).
* **dtype.** Every layer (and the ``Input``) gets ``dtype=`` ``"float32"`` or ``"float64"``,
  so weights and computation are in that dtype (no mixed policy, no global ``floatx``).
* **Kernels.** Conv2D: scratch ``W[out, in, kh, kw]`` <-> Keras ``(kh, kw, in, out)``
  (``transpose(2, 3, 1, 0)`` / ``transpose(3, 2, 0, 1)``). Dense: ``W[in, out]`` in both.
  Biases: the same in both.
* **Flatten order.** Scratch flattens ``(C, H, W)``; Keras flattens ``(H, W, C)``. The rows of
  the first Dense after a Flatten of a 3-D input are permuted: with ``C, H, W`` the Flatten's
  canonical input shape, ``perm = arange(C*H*W).reshape(C, H, W).transpose(1, 2, 0).ravel()``
  and ``keras_kernel = scratch_kernel[perm]`` (and back with the inverse permutation).
  Layers between the Flatten and that Dense (Dropout, activations) act per feature or are
  permutation-equivariant (softmax), so the permutation passes through them.
* **Transfer checks.** ``from_scratch`` checks layer kinds, every key (missing or extra),
  every shape and dtype (and finiteness) before it assigns anything, in the style of
  nanoGPT's ``from_pretrained``; the error names the layer index and Keras name, the key and
  both shapes. Nothing is half copied.
* **L2.** ``l2(lambda)`` on kernels only, never biases: ``kernel_regularizer=ExactL2(l2)``, a
  registered subclass of ``keras.regularizers.L2``; the penalty ``lambda * sum(W**2)`` is
  ``sum(model.losses)``. The stock ``L2`` casts lambda to the weight dtype through a float32
  tensor (``ops.cast(self.l2, x.dtype)``), so a float64 model with ``l2(1e-3)`` would use
  ``float32(1e-3)``, 4.7e-8 off; ``ExactL2`` converts the Python float straight to the
  weight's dtype. ``l2_of`` reports the factor Keras really applies. Never ``weight_decay``
  (which Keras applies decoupled, AdamW-style).
* **Loss.** The mean over the batch of the per-sample loss, computed with the Keras loss
  *functions* (``keras.losses.categorical_crossentropy`` etc.) on the model's output. On the
  TensorFlow backend these functions find the logits of a final softmax (sigmoid) through the
  ``_keras_logits`` attribute that ``keras.activations.softmax`` sets (or the ``Softmax`` op
  in a graph) and call ``tf.nn.softmax_cross_entropy_with_logits`` (resp.
  ``sigmoid_cross_entropy_with_logits``): the loss is fused, with no clipping. This is checked
  by the tests with saturated logits. Note: Keras's *class* losses (what
  ``model.compile(loss="categorical_crossentropy")`` uses) cast to ``keras.config.floatx()``
  (float32) first, which drops the logits of a float64 model and clips the probabilities to
  ``[1e-7, 1 - 1e-7]``; the trainer does not use them. (For the same reason ``model.fit`` on
  a float64 model with a kernel regularizer fails unless ``floatx`` is float64: it adds the
  float32 compiled loss to float64 penalties.)
* **Optimizers.** Native Keras optimizers built from the scratch names: ``sgd`` ->
  ``SGD``, ``momentum`` -> ``SGD(momentum=0.9)``, ``nesterov`` -> ``SGD(momentum=0.9,
  nesterov=True)``, ``rmsprop`` -> ``RMSprop``, ``adagrad`` -> ``Adagrad``, ``adam`` ->
  ``Adam``; extra keyword arguments are the Keras hyperparameters (validated by
  ``scratch.optimizers.make(..., flavor="keras")`` first). Keras keeps the learning rate in
  a float32 variable, which ``scratch.optimizers`` mirrors with ``lr_dtype="float32"``.
* **Training.** One ``tf.function`` per Trainer runs a whole epoch: the shared seeded batch
  indices (:func:`scratch.data.epoch_batches`) go in as one flat index array plus offsets,
  and a graph loop gathers each batch with ``tf.gather``, computes the objective (data loss
  plus L2) under a ``GradientTape`` and applies the Keras optimizer. It is traced once per
  Trainer (fixed ``input_signature``), not once per epoch, and never raises on NaN or inf.
  ``fit`` checks the data and moves them to NHWC tensors once per call; ``train_epoch`` and
  ``evaluate_batches`` (the :class:`scratch.trainer.EpochTrainer` methods ``run_epochs``
  calls) take those tensors, or canonical NumPy arrays.
  TensorFlow's "frequent retracing" detector counts traces per Python code object, so many
  Trainers in one process would trip it falsely; the Trainer's functions opt out of it
  (``_omit_frequent_tracing_warning``), and a test checks they really trace once each.
  XLA (``jit_compile=True``) is available but off: it is about 10x slower here on CPU.

This package imports keras, NumPy and scratch only; never torch or torch_models. The
Keras/TensorFlow environment (``KERAS_BACKEND``, ``TF_CPP_MIN_LOG_LEVEL``) is set in one
place, :func:`keras_models.env.configure`, called here before keras is first imported.
"""
from . import env

env.configure()

from .builder import ExactL2, ExactLeakyReLU, build, input_shape_of, l2_of, spec_of  # noqa: E402
from .layout import flatten_permutation, to_scratch_array, weight_plan  # noqa: E402
from .transfer import forward, from_scratch, to_scratch  # noqa: E402
from .trainer import OPTIMIZERS, Trainer, make_optimizer  # noqa: E402

__all__ = [
    "build",
    "from_scratch",
    "to_scratch",
    "spec_of",
    "input_shape_of",
    "l2_of",
    "forward",
    "weight_plan",
    "to_scratch_array",
    "flatten_permutation",
    "Trainer",
    "make_optimizer",
    "OPTIMIZERS",
    "ExactLeakyReLU",
    "ExactL2",
]
