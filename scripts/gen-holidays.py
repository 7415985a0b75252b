#!/usr/bin/env python3
"""Print a DRAFT holiday calendar for one year (config/holidays/YYYY.toml) for the states whose
telephone-solicitation rules ban calls on holidays (AL, LA, PA, RI, UT).

Dates move every year (Easter, nth-weekday rules, observed dates), so callgate reads them from a
per-year file rather than computing them. This script only drafts that file: check it against the
states' published calendars (and any holiday a governor adds) before shipping it.

    python3 scripts/gen-holidays.py 2028 > config/holidays/2028.toml
"""
import datetime as dt
import sys


def nth_weekday(year, month, weekday, n):
    d = dt.date(year, month, 1)
    d += dt.timedelta(days=(weekday - d.weekday()) % 7)
    return d + dt.timedelta(weeks=n - 1)


def last_weekday(year, month, weekday):
    d = dt.date(year, month + 1, 1) - dt.timedelta(days=1) if month < 12 else dt.date(year, 12, 31)
    return d - dt.timedelta(days=(d.weekday() - weekday) % 7)


def easter(year):
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l) // 451
    month = (h + l - 7 * m + 114) // 31
    day = ((h + l - 7 * m + 114) % 31) + 1
    return dt.date(year, month, day)


MON, TUE = 0, 1
ALL = ["AL", "LA", "PA", "RI", "UT"]


def holidays(y):
    e = easter(y)
    return [
        (dt.date(y, 1, 1), "New Year's Day", ALL),
        (nth_weekday(y, 1, MON, 3), "Martin Luther King Jr. Day", ALL),
        (nth_weekday(y, 2, MON, 3), "Presidents' Day", ["AL", "PA", "RI", "UT"]),
        (e - dt.timedelta(days=47), "Mardi Gras", ["LA"]),
        (e - dt.timedelta(days=2), "Good Friday", ["LA", "PA"]),
        (last_weekday(y, 5, MON), "Memorial Day", ALL),
        (nth_weekday(y, 6, MON, 1), "Jefferson Davis' Birthday", ["AL"]),
        (dt.date(y, 6, 14), "Flag Day", ["PA"]),
        (dt.date(y, 6, 19), "Juneteenth", ["PA", "RI", "UT"]),
        (dt.date(y, 7, 4), "Independence Day", ALL),
        (dt.date(y, 7, 24), "Pioneer Day", ["UT"]),
        (nth_weekday(y, 8, MON, 2), "Victory Day", ["RI"]),
        (nth_weekday(y, 9, MON, 1), "Labor Day", ALL),
        (nth_weekday(y, 10, MON, 2), "Columbus Day", ["AL", "PA", "RI", "UT"]),
        (nth_weekday(y, 11, MON, 1) + dt.timedelta(days=1), "Election Day", ["PA"]),
        (dt.date(y, 11, 11), "Veterans Day", ALL),
        (nth_weekday(y, 11, 3, 4), "Thanksgiving Day", ALL),
        (dt.date(y, 12, 25), "Christmas Day", ALL),
    ]


def country_holidays(y):
    """Public holidays (jours fériés) of France, where canvassing calls are banned (décret n°
    2022-1313): never moved to a weekday. Alsace-Moselle's two more are not listed."""
    e = easter(y)
    fr = ["FR"]
    return [
        (dt.date(y, 1, 1), "Jour de l'an", fr),
        (e + dt.timedelta(days=1), "Lundi de Pâques", fr),
        (dt.date(y, 5, 1), "Fête du Travail", fr),
        (dt.date(y, 5, 8), "Victoire 1945", fr),
        (e + dt.timedelta(days=39), "Ascension", fr),
        (e + dt.timedelta(days=50), "Lundi de Pentecôte", fr),
        (dt.date(y, 7, 14), "Fête nationale", fr),
        (dt.date(y, 8, 15), "Assomption", fr),
        (dt.date(y, 11, 1), "Toussaint", fr),
        (dt.date(y, 11, 11), "Armistice 1918", fr),
        (dt.date(y, 12, 25), "Noël", fr),
    ]


def main():
    y = int(sys.argv[1])
    print(f"# Holidays on which states ban telephone solicitation, {y}. DRAFT from")
    print("# scripts/gen-holidays.py: review against each state's calendar before use.")
    print("# A holiday on a weekend is listed on its date and on the weekday it is observed.")
    print(f"year = {y}")
    rows = []
    for d, name, states in holidays(y):
        rows.append((d, name, states))
        if d.weekday() == 5 and (d - dt.timedelta(days=1)).year == y:
            rows.append((d - dt.timedelta(days=1), name + " (observed)", states))
        elif d.weekday() == 6:
            rows.append((d + dt.timedelta(days=1), name + " (observed)", states))
    # New Year's Day of the next year observed on Friday Dec 31.
    ny = dt.date(y + 1, 1, 1)
    if ny.weekday() == 5:
        rows.append((ny - dt.timedelta(days=1), "New Year's Day (observed)", ALL))
    for d, name, states in sorted(rows):
        st = ", ".join(f'"{s}"' for s in states)
        print(f'\n[[holiday]]\ndate = "{d}"\nname = "{name}"\nstates = [{st}]')
    print("\n# Other countries' public holidays (a country policy's hours rule closes on them).")
    for d, name, countries in sorted(country_holidays(y)):
        cs = ", ".join(f'"{c}"' for c in countries)
        print(f'\n[[holiday]]\ndate = "{d}"\nname = "{name}"\ncountries = [{cs}]')


main()
