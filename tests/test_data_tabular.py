"""CSV and NPZ readers: values, label encoding, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest

from deltanet.data import encode_labels, load_csv, load_npz


def csv_file(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_string_labels(tmp_path):
    p = csv_file(tmp_path, "a,b,species\n1.5,2,setosa\n-3,4e1,virginica\n0.25, 7 ,setosa\n5,6,versicolor\n")
    X, y, features, classes = load_csv(p, target="species")
    np.testing.assert_array_equal(X, [[1.5, 2], [-3, 40], [0.25, 7], [5, 6]])
    assert X.dtype == np.float64
    assert features == ["a", "b"]
    assert classes == ["setosa", "versicolor", "virginica"]  # sorted
    np.testing.assert_array_equal(y, [0, 2, 0, 1])
    assert y.dtype == np.int64


def test_csv_target_in_the_middle_and_default_last(tmp_path):
    p = csv_file(tmp_path, "x1,label,x2\n1,0,2\n3,1,4\n")
    t = load_csv(p, target="label")
    assert t.feature_names == ["x1", "x2"]
    np.testing.assert_array_equal(t.X, [[1, 2], [3, 4]])
    t_last = load_csv(p)  # default: the last column
    assert t_last.feature_names == ["x1", "label"] and t_last.class_names == ["2", "4"]


def test_csv_integer_labels_are_classes_mapped_to_0_based(tmp_path):
    p = csv_file(tmp_path, "f,t\n0.1,3\n0.2,1\n0.3,3\n0.4,-1\n")
    t = load_csv(p, target="t")
    assert t.class_names == ["-1", "1", "3"]
    np.testing.assert_array_equal(t.y, [2, 1, 2, 0])


def test_csv_regression(tmp_path):
    p = csv_file(tmp_path, "f,price\n1,10.5\n2,11.25\n3,9\n")
    t = load_csv(p, target="price")
    assert t.class_names is None and t.y.dtype == np.float64
    np.testing.assert_array_equal(t.y, [10.5, 11.25, 9.0])
    forced = load_csv(csv_file(tmp_path, "f,n\n1,1\n2,2\n", "i.csv"), target="n", task="regression")
    assert forced.class_names is None and forced.y.tolist() == [1.0, 2.0]


def test_csv_quoting_blank_lines_bom_and_delimiter(tmp_path):
    p = tmp_path / "q.csv"
    p.write_bytes('\ufeff"a";"b";"c"\n\n1;2;"x y"\n\n3;4;"z"\n'.encode())
    t = load_csv(p, target="c", delimiter=";")
    assert t.feature_names == ["a", "b"] and t.class_names == ["x y", "z"]
    np.testing.assert_array_equal(t.X, [[1, 2], [3, 4]])


@pytest.mark.parametrize("text,target,pattern", [
    ("", None, "the file is empty"),
    ("\n\n", None, "the file is empty"),
    ("a,b\n", None, "no data rows"),
    ("a,b,c\n1,2,x\n", "d", r"target column 'd' not found; columns: a, b, c"),
    ("a,b,c\n1,2,x\n3,4\n", "c", r"line 3: expected 3 fields .* got 2"),
    ("a,b,c\n1,2,x\n3,4,y,5\n", "c", r"line 3: expected 3 fields .* got 4"),
    ("a,b,c\n1,2,x\n3,,y\n", "c", r"line 3, column 'b': missing value"),
    ("a,b,c\n1,2,x\n\n3,4,y\n5,abc,z\n", "c", r"line 5, column 'b': 'abc' is not a number"),
    ("a,b,c\n1,nan,x\n", "c", r"line 2, column 'b': missing value"),
    ("a,b,c\n1,inf,x\n", "c", r"line 2, column 'b': 'inf' is not a finite number"),
    ("a,b,c\n1,2,x\n3,4,\n", "c", r"line 3, column 'c': missing target value"),
    ("a,b,c\n1,2,3\n3,4,oops\n", "c", None),  # mixed labels are fine for classification (see below)
    ("a,a,c\n1,2,x\n", "c", r"duplicate column names \['a'\]"),
    ("a,,c\n1,2,x\n", "c", "column 2 of the header has no name"),
    ("c\n1\n", "c", "at least one feature column"),
])
def test_csv_errors(tmp_path, text, target, pattern):
    p = csv_file(tmp_path, text)
    if pattern is None:
        assert load_csv(p, target=target).class_names == ["3", "oops"]
        return
    with pytest.raises(ValueError, match=pattern) as info:
        load_csv(p, target=target)
    assert str(p) in str(info.value)


def test_csv_regression_target_errors_name_the_line(tmp_path):
    p = csv_file(tmp_path, "a,y\n1,2.5\n2,abc\n")
    with pytest.raises(ValueError, match=r"line 3, column 'y': target 'abc' is not a number"):
        load_csv(p, target="y", task="regression")
    p = csv_file(tmp_path, "a,y\n1,2.5\n2,inf\n", "inf.csv")
    with pytest.raises(ValueError, match=r"line 3, column 'y': target 'inf' is not a finite number"):
        load_csv(p, target="y")


def test_csv_line_numbers_count_multiline_fields(tmp_path):
    p = csv_file(tmp_path, 'a,b,c\n1,2,"two\nlines"\n3,x,y\n')
    with pytest.raises(ValueError, match=r"line 4, column 'b'"):
        load_csv(p, target="c")


def test_csv_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_csv(tmp_path / "nope.csv")


def test_csv_bad_task(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        load_csv(csv_file(tmp_path, "a,b\n1,2\n"), task="clustering")


@pytest.mark.parametrize("values,task,y,names", [
    (np.array(["b", "a", "b"]), "auto", [1, 0, 1], ["a", "b"]),
    (np.array([2, 0, 2]), "auto", [1, 0, 1], ["0", "2"]),
    (np.array([True, False]), "auto", [1, 0], ["0", "1"]),
    (np.array([0.5, 1.5]), "auto", [0.5, 1.5], None),
    (np.array([0.5, 1.5]), "classification", [0, 1], ["0.5", "1.5"]),
    (np.array([1, 2]), "regression", [1.0, 2.0], None),
])
def test_encode_labels(values, task, y, names):
    got_y, got_names = encode_labels(values, task)
    assert got_y.tolist() == y and got_names == names


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10, 3)).astype(np.float32)
    y = rng.integers(0, 3, 10)
    np.savez(tmp_path / "d.npz", X=X, y=y, feature_names=np.array(["u", "v", "w"]), class_names=np.array(["r", "g", "b"]))
    t = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(t.X, X.astype(np.float64))
    np.testing.assert_array_equal(t.y, y)
    assert t.feature_names == ["u", "v", "w"] and t.class_names == ["r", "g", "b"]


def test_npz_images_are_flattened_and_keys_case_insensitive(tmp_path):
    np.savez(tmp_path / "img.npz", x=np.zeros((4, 2, 3)), Y=np.array([0.5, 1, 2, 3]))
    t = load_npz(tmp_path / "img.npz")
    assert t.X.shape == (4, 6) and t.class_names is None and t.feature_names[-1] == "x5"


@pytest.mark.parametrize("arrays,pattern", [
    ({"X": np.zeros((3, 2))}, r"no array named 'y'; the archive holds \['X'\]"),
    ({"y": np.zeros(3)}, r"no array named 'X'"),
    ({"X": np.zeros(3), "y": np.zeros(3)}, r"must have shape \(n_samples, n_features\)"),
    ({"X": np.zeros((3, 2)), "y": np.zeros(4)}, r"'y' must have shape \(3,\)"),
    ({"X": np.array([[1.0, np.nan]]), "y": np.zeros(1)}, r"NaN or infinity \(first at row 0, column 1\)"),
    ({"X": np.array([["a", "b"]]), "y": np.zeros(1)}, "must be numeric"),
    ({"X": np.zeros((2, 2)), "y": np.zeros(2), "feature_names": np.array(["a"])}, "1 names for 2 features"),
])
def test_npz_errors(tmp_path, arrays, pattern):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ValueError, match=pattern) as info:
        load_npz(p)
    assert str(p) in str(info.value)


def test_npz_refuses_pickled_objects(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.zeros((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="cannot be read without unpickling"):
        load_npz(p)


def test_npz_not_an_archive(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match=r"not a readable \.npz archive"):
        load_npz(p)
    q = tmp_path / "single.npy"
    np.save(q, np.zeros(3))
    with pytest.raises(ValueError, match="got a single array"):
        load_npz(q)
