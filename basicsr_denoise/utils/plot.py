"""Line plots drawn with OpenCV, so the tools need no matplotlib."""

import math

import cv2
import numpy as np

COLOURS = [(200, 80, 0), (0, 120, 255), (40, 160, 40), (0, 0, 200), (150, 0, 150), (120, 120, 0)]  # BGR


def _ticks(lo, hi, log):
    if log:
        return [10**(math.log10(lo) + (math.log10(hi) - math.log10(lo)) * i / 4) for i in range(5)]
    return [lo + (hi - lo) * i / 4 for i in range(5)]


def line_plot(series, path, xlabel, ylabel, *, logx=False, size=(640, 420), hlines=None, connect=True):
    """Write a PNG of one polyline per series.

    Args:
        series (dict): ``{name: [(x, y) or (x, y, label), ...]}``; points are joined in the given order and a
            ``label`` is written next to its point.
        path (str): Output PNG.
        xlabel, ylabel (str): Axis titles.
        logx (bool): Logarithmic x axis (x must be > 0). Default: False.
        size (tuple): ``(width, height)`` in pixels. Default: (640, 420).
        hlines (dict | None): ``{name: y}`` dashed horizontal reference lines. Default: None.
        connect (bool): Join the points of a series; False draws labelled points only. Default: True.
    """
    w, h = size
    left, right, top, bottom = 70, 20, 30, 50
    img = np.full((h, w, 3), 255, np.uint8)
    pts = [p for s in series.values() for p in s]
    if not pts:
        cv2.imwrite(path, img)
        return
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts] + list((hlines or {}).values())
    fx = (lambda v: math.log10(v)) if logx else (lambda v: v)  # noqa: E731
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = (x0 / 2, x1 * 2) if logx else (x0 - 1, x1 + 1)
    if logx:  # a margin of 5 % of the range on both sides
        x0, x1 = x0 / (x1 / x0)**0.05, x1 * (x1 / x0)**0.05
    y0, y1 = min(ys), max(ys)
    pad = max((y1 - y0) * 0.1, 0.05)
    y0, y1 = y0 - pad, y1 + pad

    def to_px(x, y):
        return (int(round(left + (fx(x) - fx(x0)) / (fx(x1) - fx(x0)) * (w - left - right))),
                int(round(h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))))

    font = cv2.FONT_HERSHEY_SIMPLEX
    black, grey = (0, 0, 0), (200, 200, 200)
    for yv, xv in zip(_ticks(y0, y1, False), _ticks(x0, x1, logx)):  # grid and tick labels
        _, py = to_px(x0, yv)
        cv2.line(img, (left, py), (w - right, py), grey, 1)
        cv2.putText(img, f'{yv:.2f}', (5, py + 4), font, 0.4, black, 1, cv2.LINE_AA)
        px, _ = to_px(xv, y0)
        cv2.line(img, (px, top), (px, h - bottom), grey, 1)
        cv2.putText(img, f'{xv:.3g}', (px - 15, h - bottom + 18), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (w - right, h - bottom), black, 1)
    cv2.putText(img, xlabel, (w // 2 - 4 * len(xlabel), h - 10), font, 0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, ylabel, (5, 18), font, 0.5, black, 1, cv2.LINE_AA)
    for name, yv in (hlines or {}).items():
        _, py = to_px(x0, yv)
        for xa in range(left, w - right, 12):
            cv2.line(img, (xa, py), (min(xa + 6, w - right), py), (90, 90, 90), 1)
        cv2.putText(img, name, (w - right - 8 * len(name) - 5, py - 4), font, 0.4, (90, 90, 90), 1, cv2.LINE_AA)
    for k, (name, pts) in enumerate(series.items()):
        col = COLOURS[k % len(COLOURS)]
        px = [to_px(p[0], p[1]) for p in pts]
        for a, b in zip(px[:-1], px[1:]) if connect else ():
            cv2.line(img, a, b, col, 2, cv2.LINE_AA)
        for p, q in zip(px, pts):
            cv2.circle(img, p, 3 if connect else 4, col, -1, cv2.LINE_AA)
            if len(q) > 2 and q[2]:
                cv2.putText(img, str(q[2]), (p[0] + 5, p[1] - 5), font, 0.35, col, 1, cv2.LINE_AA)
        cv2.putText(img, name, (left + 10, top + 18 + 16 * k), font, 0.45, col, 1, cv2.LINE_AA)
    cv2.imwrite(path, img)
