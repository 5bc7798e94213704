from granula_pipeline.defs.launch import ingest


def test_small_file_loads(instance, granula, settings, db, tmp_path):
    path = settings.inbox / "orders.csv"
    path.write_text('id,name,value\n1,"a, b",1.5\n2,"x\ny",2\n3,,\n')
    record, result = ingest(instance, granula, path)
    print(record.summary())
    assert result.success, result
    rows = db.execute("SELECT * FROM datasets.orders ORDER BY id").fetchall()
    print(rows)
    assert record.status == "completed"
