"""A file dropped in the inbox, through the real job, into a typed table."""

from granula_pipeline.runs import ingest


def test_inbox_file_loads_typed_rows_with_lineage_and_moves_to_processed(
    instance, granula, settings, db
):
    path = settings.inbox / "orders.csv"
    path.write_text('id,name,value\n1,"a, b",1.5\n2,"x\ny",2\n3,,\n')
    record, result = ingest(instance, granula, path)

    assert result.success
    assert record.status == "completed"
    assert (record.total_rows, record.loaded_rows, record.rejected_rows) == (3, 3, 0)
    rows = db.execute("SELECT * FROM datasets.orders ORDER BY id").fetchall()
    assert rows == [
        (1, "a, b", 1.5, record.file_id, 0, 1),  # then _granula_row: the order copied in
        (2, "x\ny", 2.0, record.file_id, 0, 2),
        (3, None, None, record.file_id, 0, 3),
    ]
    assert not path.exists()
    assert (settings.processed_dir / f"{record.file_id}-orders.csv").exists()


def test_a_file_loaded_before_loads_again_into_another_dataset_when_forced(
    instance, granula, tmp_path, db
):
    path = tmp_path / "export.csv"
    path.write_text("id\n1\n2\n")
    first, _ = ingest(instance, granula, path, dataset="old")
    again, result = ingest(instance, granula, path, dataset="new", force=True)

    assert result.success and again.status == "completed"
    assert again.file_id != first.file_id and again.table_name == "datasets.new"
    assert db.execute("SELECT id FROM datasets.new ORDER BY id").fetchall() == [(1,), (2,)]
