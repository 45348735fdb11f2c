"""kiln.Camera with a camera-to-world matrix and intrinsics: the same camera as the scene loader
makes from the same JSON (so the same image), and the same errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import kiln

# A rotation about (0.48, -0.6, 0.64) by 0.9 rad, at (0.3, 0.4, 3.5), in OpenCV's axes (y down,
# looking along +z), pointed back at the sphere near the origin.
_AX = np.array([0.48, -0.6, 0.64])


def _rot(axis: np.ndarray, a: float) -> np.ndarray:
    x, y, z = axis
    c, s, C = math.cos(a), math.sin(a), 1 - math.cos(a)
    return np.array([[c + x * x * C, x * y * C - z * s, x * z * C + y * s],
                     [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
                     [z * x * C - y * s, z * y * C + x * s, c + z * z * C]])


def _look_matrix(pos, at, up) -> list:
    """OpenCV camera-to-world of a camera at pos looking at at."""
    f = np.subtract(at, pos, dtype=np.float64)
    f /= np.linalg.norm(f)
    r = np.cross(f, up)
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    M = np.eye(4)
    M[:3, 0], M[:3, 1], M[:3, 2], M[:3, 3] = r, -u, f, pos
    return M.reshape(16).tolist()


MATRIX = _look_matrix([0.3, 0.4, -3.5], [0.1, 0.05, 0.0], [0.05, 1.0, 0.1])
K = [[30.0, 0.0, 9.25], [0.0, 34.0, 10.5], [0.0, 0.0, 1.0]]


def _scene(camera: dict) -> kiln.Scene:
    return kiln.Scene.from_dict({
        "settings": {"width": 24, "height": 18, "spp": 1, "max_bounces": 1},
        "camera": camera,
        "objects": [{"type": "sphere", "center": [0.2, 0.1, 0.3], "radius": 0.7,
                     "material": {"type": "diffuse", "albedo": [0.7, 0.4, 0.2]}}],
        "environment": {"type": "constant", "color": [0.4, 0.5, 0.8]},
    })


def test_matrix_and_k_camera_is_the_loaders() -> None:
    s = _scene({"convention": "opencv", "matrix": MATRIX, "K": K})
    cam = s.camera
    assert cam.has_intrinsics and cam.intrinsics_size == (24, 18)
    assert (cam.fx, cam.fy, cam.cx, cam.cy) == (30.0, 34.0, 9.25, 10.5)
    with kiln.Renderer(s) as r:
        own = r.render()
        again = r.render(camera=cam)
        assert np.array_equal(own.color, again.color)
        assert np.array_equal(own.instance_id, again.instance_id)
        # the principal point moves the image
        moved = r.render(camera={"cx": 14.0, "fx": 30.0, "fy": 34.0, "cy": 10.5})
        assert not np.array_equal(own.color, moved.color)


def test_conventions_agree() -> None:
    M = np.array(MATRIX).reshape(4, 4)
    gl = M.copy()
    gl[:3, 1:3] *= -1  # OpenGL's axes: y up, z back
    a = kiln.Camera.from_matrix(MATRIX, "opencv", fx=30.0, intrinsics_size=(24, 18))
    b = kiln.Camera.from_matrix(gl, "opengl", fx=30.0, intrinsics_size=(24, 18))
    assert a == b
    c = kiln.Camera.from_dict({"matrix": gl.reshape(16).tolist(), "fx": 30}, size=(24, 18))
    assert c == a and c.cx == 11.5 and c.cy == 8.5


def test_to_dict_round_trip() -> None:
    c = kiln.Camera(position=(0, 0, -3), look_at=(0, 0, 0), fx=40.0, fy=41.0, cx=3.0, cy=-2.0,
                    intrinsics_size=(32, 24))
    assert "vfov" not in c.to_dict()
    assert kiln.Camera.from_dict(c.to_dict()) == c
    assert c.vfov == pytest.approx(math.degrees(2 * math.atan(12 / 41)))
    # a vfov given replaces a base's intrinsics
    v = kiln.Camera.from_dict({"vfov": 30}, base=c)
    assert not v.has_intrinsics and v.vfov == 30


@pytest.mark.parametrize(
    "d, match",
    [
        ({"matrix": (np.eye(4) * [2, 2, 2, 1]).reshape(16).tolist()}, "scaled"),
        ({"matrix": np.diag([-1.0, 1, 1, 1]).reshape(16).tolist()}, "mirrored"),
        ({"matrix": np.diag([0.0, 1, 1, 1]).reshape(16).tolist()}, "singular"),
        ({"matrix": MATRIX, "position": [0, 0, 0]}, "both give the camera's pose"),
        ({"position": [0, 0, -1], "look_at": [0, 0, 0], "vfov": 30, "fx": 20}, "field of view"),
        ({"position": [0, 0, -1], "look_at": [0, 0, 0], "K": [20, 0.1, 0, 0, 20, 0, 0, 0, 1]},
         "skew"),
        ({"position": [0, 0, -1], "look_at": [0, 0, 0], "fx": -2}, "> 0"),
    ],
)
def test_errors(d: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        kiln.Camera.from_dict(d, size=(24, 18))
    with pytest.raises(kiln.SceneError, match=match):
        _scene(d)
