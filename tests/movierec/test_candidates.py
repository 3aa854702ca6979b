from movierec.candidates import RRF_K, merge_candidates


def test_merge_dedupes_and_remembers_every_source() -> None:
    merged = merge_candidates(
        {"retrieval": [(10, 3.0), (20, 2.0), (30, 1.0)], "content": [(20, 0.9), (40, 0.8)]}
    )
    by_id = {c.movie_id: c for c in merged}
    assert sorted(by_id) == [10, 20, 30, 40]
    assert by_id[20].sources == ["retrieval", "content"]
    assert by_id[20].source_scores == {"retrieval": 2.0, "content": 0.9}
    assert by_id[20].source_ranks == {"retrieval": 2, "content": 1}
    assert by_id[40].sources == ["content"]


def test_merged_score_is_reciprocal_rank_fusion_by_hand() -> None:
    merged = merge_candidates({"a": [(1, 9.0), (2, 8.0)], "b": [(2, 0.5), (3, 0.4)]})
    scores = {c.movie_id: c.merged_score for c in merged}
    assert scores[1] == 1 / (RRF_K + 1)
    assert scores[2] == 1 / (RRF_K + 2) + 1 / (RRF_K + 1)
    assert scores[3] == 1 / (RRF_K + 2)
    # 2 is in both lists, so it leads; 1 (rank 1 once) beats 3 (rank 2 once).
    assert [c.movie_id for c in merged] == [2, 1, 3]


def test_weights_scale_a_source_contribution() -> None:
    merged = merge_candidates({"a": [(1, 1.0)], "b": [(2, 1.0)]}, weights={"a": 0.5})
    assert [c.movie_id for c in merged] == [2, 1]
    assert merged[1].merged_score == 0.5 / (RRF_K + 1)


def test_duplicate_inside_one_list_keeps_the_best_occurrence() -> None:
    merged = merge_candidates({"a": [(1, 5.0), (1, 1.0), (2, 0.5)]})
    by_id = {c.movie_id: c for c in merged}
    assert by_id[1].source_scores == {"a": 5.0}
    assert by_id[2].source_ranks == {"a": 2}


def test_empty_input_gives_empty_list() -> None:
    assert merge_candidates({}) == []
    assert merge_candidates({"a": []}) == []
