"""The bundled all-MiniLM-L6-v2 encoder and the embeddings parquet file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sentence_transformers import SentenceTransformer

from models.content.embeddings import (
    EMBEDDING_DIM,
    EMBEDDINGS_FILENAME,
    embed_movies,
    embedding_matrix,
    encode_texts,
    read_embeddings,
    write_embeddings,
)


def test_encoder_is_offline_and_bundled(encoder: SentenceTransformer) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert encoder.get_embedding_dimension() == EMBEDDING_DIM


def test_encode_texts_gives_unit_float32_vectors(encoder: SentenceTransformer) -> None:
    texts = [
        "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War.",
        "Return of the Jedi (1983). Genres: Action, Adventure, Romance, Sci-Fi, War.",
        "Sense and Sensibility (1995). Genres: Drama, Romance.",
    ]
    vectors = encode_texts(texts, encoder, batch_size=2, num_threads=2)
    assert vectors.shape == (3, EMBEDDING_DIM)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Deterministic, and batching does not change the result beyond float noise.
    np.testing.assert_allclose(encode_texts(texts, encoder, batch_size=3), vectors, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]
    assert encode_texts([], encoder).shape == (0, EMBEDDING_DIM)


def test_parquet_round_trip(tmp_path: Path, encoder: SentenceTransformer) -> None:
    movies = pd.DataFrame(
        {
            "movie_id": [7, 3],
            "title": ["Heat", "Casablanca"],
            "year": pd.array([1995, 1942], dtype="Int64"),
            "genres": [["Action", "Crime"], ["Drama", "Romance", "War"]],
        }
    )
    frame = embed_movies(movies, model=encoder)
    assert frame["movie_id"].tolist() == [3, 7]
    assert frame.attrs["encode_seconds"] > 0

    path = write_embeddings(frame, tmp_path)
    assert path == tmp_path / EMBEDDINGS_FILENAME
    schema = pq.read_schema(path)
    assert schema.field("movie_id").type == pa.int64()
    assert schema.field("embedding").type == pa.list_(pa.float32())
    assert schema.field("text").type == pa.string()
    assert b"all-MiniLM-L6-v2" in schema.metadata[b"movierec.content"]

    back = read_embeddings(path)
    assert back["movie_id"].tolist() == [3, 7]
    assert back["text"].tolist() == frame["text"].tolist()
    np.testing.assert_array_equal(embedding_matrix(back)[1], embedding_matrix(frame)[1])
