"""A sentence-transformers BERT encoder as an ONNX graph, built from its weights.

Use `build_encoder(tensors, config)` with the tensors of the package's model.safetensors
and its config.json: the graph takes `input_ids` and `attention_mask` (int64, batch x
tokens) and returns `embedding` (float32, batch x hidden): BERT's last hidden state,
mean-pooled over the real tokens and L2-normalized, which is what the sentence-transformers
pipeline of all-MiniLM-L6-v2 (Transformer -> Pooling(mean) -> Normalize) computes.

Why build the graph rather than ship one: the weights already ship inside a package, and
exporting needs torch. The graph is plain opset-18 operators (the GELU written with Erf);
onnxruntime's optimizer fuses LayerNorm, GELU and attention itself. Token-type ids are
always 0 here (single sentences), so that embedding row is added as a constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
Tensors = Mapping[str, npt.NDArray[Any]]


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def build_encoder(tensors: Tensors, config: Mapping[str, Any], *, int8: bool = False
                  ) -> onnx.ModelProto:
    """The encoder graph for a BERT of `config` (hidden_size, heads, layers, eps).

    `int8`: every Linear layer's weight is stored as int8 with one symmetric scale per
    output channel, and its input is quantized per batch at run time
    (DynamicQuantizeLinear -> MatMulInteger -> scale): the pattern onnxruntime's own
    dynamic quantizer writes (QInt8, per channel), which its optimizer fuses into one
    MatMulIntegerToFloat kernel. Written here, vectorized, because the quantizer's
    Python loop over 20,736 channels took 13 of the 17 s of an INT8 start-up.
    """
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    g = _Graph()
    f32 = np.float32

    def w(name: str) -> str:
        return g.const(name, tensors[name].astype(f32))

    def linear(x: str, prefix: str) -> str:
        # torch Linear stores (out, in); MatMul wants (in, out).
        weight_t = tensors[prefix + ".weight"].T.astype(f32)
        if not int8:
            product = g.op("MatMul", x, g.const(prefix + ".weight.T", weight_t))
            return g.op("Add", product, w(prefix + ".bias"))
        scale = np.maximum(np.abs(weight_t).max(axis=0), 1e-12) / 127.0  # per column
        q = np.clip(np.rint(weight_t / scale), -127, 127).astype(np.int8)
        g.nodes.append(helper.make_node(
            "DynamicQuantizeLinear", [x], [f"{prefix}.xq", f"{prefix}.xs", f"{prefix}.xz"]))
        acc = g.op("MatMulInteger", f"{prefix}.xq", g.const(prefix + ".wq", q),
                   f"{prefix}.xz", g.const(prefix + ".wz", np.zeros(q.shape[1], np.int8)))
        scales = g.op("Mul", f"{prefix}.xs", g.const(prefix + ".ws", scale.astype(f32)))
        product = g.op("Mul", g.op("Cast", acc, to=TensorProto.FLOAT), scales)
        return g.op("Add", product, w(prefix + ".bias"))

    def layer_norm(x: str, prefix: str) -> str:
        return g.op("LayerNormalization", x, w(prefix + ".weight"), w(prefix + ".bias"),
                    axis=-1, epsilon=eps)

    # Embeddings: word + position (first T rows) + token type 0, then LayerNorm.
    ids, mask = "input_ids", "attention_mask"
    seq_len = g.op("Slice", g.op("Shape", ids), g.const("one_i", np.array([1])),
                   g.const("two_i", np.array([2])))
    positions = g.op("Slice", w("embeddings.position_embeddings.weight"),
                     g.const("zero_i", np.array([0])), seq_len, g.const("zero_axis",
                                                                     np.array([0])))
    x = g.op("Add", g.op("Gather", w("embeddings.word_embeddings.weight"), ids), positions)
    x = g.op("Add", x, g.const(
        "token_type_0", tensors["embeddings.token_type_embeddings.weight"][0].astype(f32)))
    x = layer_norm(x, "embeddings.LayerNorm")

    # Padding never attends: -10000 added to its scores (BERT's own convention).
    mask_f = g.op("Cast", mask, to=TensorProto.FLOAT)
    keep = g.op("Unsqueeze", mask_f, g.const("axes_12", np.array([1, 2])))
    score_bias = g.op("Mul", g.op("Sub", g.const("one_f", np.array(1.0, f32)), keep),
                      g.const("minus_big", np.array(-10000.0, f32)))
    split_heads = g.const("split_heads", np.array([0, 0, heads, head_dim]))
    merge_heads = g.const("merge_heads", np.array([0, 0, hidden]))
    scale = g.const("scale", np.array(1.0 / math.sqrt(head_dim), f32))
    half = g.const("half", np.array(0.5, f32))
    inv_sqrt2 = g.const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), f32))
    one = "one_f"

    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."

        def heads_of(name: str, perm: list[int], p: str = p, x: str = x) -> str:
            return g.op("Transpose", g.op("Reshape", linear(x, p + name), split_heads),
                        perm=perm)

        q = heads_of("attention.self.query", [0, 2, 1, 3])
        k = heads_of("attention.self.key", [0, 2, 3, 1])
        v = heads_of("attention.self.value", [0, 2, 1, 3])
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), score_bias)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        x = layer_norm(g.op("Add", linear(context, p + "attention.output.dense"), x),
                       p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = g.op("Mul", g.op("Mul", h, half),
                 g.op("Add", g.op("Erf", g.op("Mul", h, inv_sqrt2)), one))  # exact GELU
        x = layer_norm(g.op("Add", linear(h, p + "output.dense"), x), p + "output.LayerNorm")

    # Mean over the real tokens, then unit length.
    m = g.op("Unsqueeze", mask_f, g.const("axis_2", np.array([2])))
    summed = g.op("ReduceSum", g.op("Mul", x, m), g.const("axis_1", np.array([1])),
                  keepdims=0)
    counts = g.op("Max", g.op("ReduceSum", m, "axis_1", keepdims=0),
                  g.const("tiny", np.array(1e-9, f32)))
    mean = g.op("Div", summed, counts)
    norm = g.op("Max", g.op("ReduceL2", mean, g.const("axis_last", np.array([-1])),
                            keepdims=1), "tiny")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes, "sentence_encoder",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="ml_services.bert_graph")
    model.ir_version = 8
    return model
