"""Spanish postal codes: which province a code belongs to, and whether the city agrees.

A Spanish postal code has five digits; the first two name the province (01 Álava ... 50
Zaragoza, 51 Ceuta, 52 Melilla), and the province its autonomous community (:func:`community`,
whose regional holidays the contact policy keeps). :func:`check` returns verification flags for
an address:

* ``malformed_postal_code``: not five digits, or a province prefix outside 01-52;
* ``postal_code_city_mismatch``: the city is known in the table below under another province
  than the code's prefix (a city the table does not know is never flagged).

An address with a flag is still recorded (it may be right: the table is small and people move
between neighbouring towns); the customer view shows the flags so someone verifies it. Only
Spanish addresses are checked: ``country`` absent or one of :data:`SPANISH`; any other country
is left alone. Pure data and functions, no I/O.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

MALFORMED = "malformed_postal_code"
MISMATCH = "postal_code_city_mismatch"

#: Spellings of ``country`` taken as Spain (compared case-insensitively, without accents).
SPANISH = frozenset({"es", "esp", "espana", "spain"})

#: Province prefix -> (province name, main cities and common alternative spellings). The
#: province's own names count as places of that province ("Madrid", "Asturias").
PROVINCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "01": ("Álava", ("Araba", "Vitoria-Gasteiz", "Vitoria", "Gasteiz", "Llodio", "Laudio", "Amurrio")),
    "02": ("Albacete", ("Hellín", "Villarrobledo", "Almansa", "La Roda")),
    "03": ("Alicante", ("Alacant", "Elche", "Elx", "Torrevieja", "Orihuela", "Benidorm", "Alcoy",
                        "Alcoi", "Elda", "San Vicente del Raspeig", "Dénia", "Villena", "Petrer")),
    "04": ("Almería", ("Roquetas de Mar", "El Ejido", "Níjar", "Vícar", "Adra")),
    "05": ("Ávila", ("Arévalo",)),
    "06": ("Badajoz", ("Mérida", "Don Benito", "Almendralejo", "Villanueva de la Serena", "Zafra")),
    "07": ("Illes Balears", ("Baleares", "Islas Baleares", "Palma", "Palma de Mallorca", "Calvià",
                             "Manacor", "Ibiza", "Eivissa", "Llucmajor", "Marratxí", "Inca",
                             "Ciutadella", "Maó", "Mahón")),
    "08": ("Barcelona", ("L'Hospitalet de Llobregat", "Hospitalet de Llobregat", "L'Hospitalet",
                         "Badalona", "Terrassa", "Sabadell", "Mataró", "Santa Coloma de Gramenet",
                         "Cornellà de Llobregat", "Sant Boi de Llobregat", "Sant Cugat del Vallès",
                         "Manresa", "Rubí", "Vilanova i la Geltrú", "Viladecans", "Castelldefels",
                         "Granollers", "El Prat de Llobregat", "Vic", "Igualada")),
    "09": ("Burgos", ("Miranda de Ebro", "Aranda de Duero")),
    "10": ("Cáceres", ("Plasencia", "Navalmoral de la Mata", "Coria")),
    "11": ("Cádiz", ("Jerez de la Frontera", "Jerez", "Algeciras", "San Fernando",
                     "El Puerto de Santa María", "Chiclana de la Frontera",
                     "Sanlúcar de Barrameda", "La Línea de la Concepción", "Puerto Real")),
    "12": ("Castellón", ("Castelló", "Castellón de la Plana", "Castelló de la Plana", "Vila-real",
                         "Villarreal", "Burriana", "Vinaròs", "Benicarló")),
    "13": ("Ciudad Real", ("Puertollano", "Tomelloso", "Alcázar de San Juan", "Valdepeñas")),
    "14": ("Córdoba", ("Lucena", "Puente Genil", "Montilla", "Priego de Córdoba")),
    "15": ("A Coruña", ("La Coruña", "Coruña", "Santiago de Compostela", "Ferrol", "Narón",
                        "Oleiros", "Arteixo", "Carballo")),
    "16": ("Cuenca", ("Tarancón",)),
    "17": ("Girona", ("Gerona", "Figueres", "Blanes", "Lloret de Mar", "Olot")),
    "18": ("Granada", ("Motril", "Almuñécar", "Armilla", "Maracena", "Baza", "Loja")),
    "19": ("Guadalajara", ("Azuqueca de Henares",)),
    "20": ("Gipuzkoa", ("Guipúzcoa", "Donostia-San Sebastián", "Donostia", "San Sebastián", "Irun",
                        "Errenteria", "Eibar", "Zarautz", "Arrasate")),
    "21": ("Huelva", ("Lepe", "Almonte", "Moguer", "Ayamonte", "Isla Cristina")),
    "22": ("Huesca", ("Monzón", "Barbastro", "Jaca", "Fraga")),
    "23": ("Jaén", ("Linares", "Andújar", "Úbeda", "Martos", "Alcalá la Real", "Baeza")),
    "24": ("León", ("Ponferrada", "San Andrés del Rabanedo", "Astorga")),
    "25": ("Lleida", ("Lérida", "Balaguer", "Tàrrega", "Mollerussa", "La Seu d'Urgell")),
    "26": ("La Rioja", ("Logroño", "Calahorra", "Arnedo", "Haro")),
    "27": ("Lugo", ("Monforte de Lemos", "Viveiro", "Vilalba")),
    "28": ("Madrid", ("Móstoles", "Alcalá de Henares", "Fuenlabrada", "Leganés", "Getafe",
                      "Alcorcón", "Torrejón de Ardoz", "Parla", "Alcobendas", "Las Rozas de Madrid",
                      "Las Rozas", "San Sebastián de los Reyes", "Pozuelo de Alarcón",
                      "Rivas-Vaciamadrid", "Coslada", "Valdemoro", "Majadahonda",
                      "Collado Villalba", "Aranjuez", "Arganda del Rey", "Boadilla del Monte",
                      "Pinto", "Colmenar Viejo", "Tres Cantos")),
    "29": ("Málaga", ("Marbella", "Mijas", "Vélez-Málaga", "Fuengirola", "Torremolinos",
                      "Benalmádena", "Estepona", "Rincón de la Victoria", "Antequera", "Ronda")),
    "30": ("Murcia", ("Cartagena", "Lorca", "Molina de Segura", "Alcantarilla", "Cieza", "Yecla",
                      "Águilas", "Mazarrón")),
    "31": ("Navarra", ("Nafarroa", "Pamplona", "Iruña", "Iruña-Pamplona", "Tudela", "Barañáin",
                       "Burlada", "Estella")),
    "32": ("Ourense", ("Orense", "Verín", "O Barco de Valdeorras")),
    "33": ("Asturias", ("Oviedo", "Gijón", "Xixón", "Avilés", "Siero", "Langreo", "Mieres")),
    "34": ("Palencia", ("Aguilar de Campoo", "Guardo")),
    "35": ("Las Palmas", ("Las Palmas de Gran Canaria", "Telde", "Santa Lucía de Tirajana",
                          "Arrecife", "San Bartolomé de Tirajana", "Arucas", "Puerto del Rosario")),
    "36": ("Pontevedra", ("Vigo", "Vilagarcía de Arousa", "Redondela", "Cangas", "Marín", "Lalín")),
    "37": ("Salamanca", ("Béjar", "Ciudad Rodrigo", "Santa Marta de Tormes")),
    "38": ("Santa Cruz de Tenerife", ("Tenerife", "San Cristóbal de La Laguna", "La Laguna", "Arona",
                                      "Adeje", "La Orotava", "Granadilla de Abona", "Los Realejos",
                                      "Puerto de la Cruz", "Los Llanos de Aridane")),
    "39": ("Cantabria", ("Santander", "Torrelavega", "Castro-Urdiales", "Camargo", "Piélagos")),
    "40": ("Segovia", ("Cuéllar", "El Espinar")),
    "41": ("Sevilla", ("Seville", "Dos Hermanas", "Alcalá de Guadaíra", "Utrera",
                       "Mairena del Aljarafe", "Écija", "La Rinconada", "Los Palacios y Villafranca",
                       "Carmona")),
    "42": ("Soria", ("Almazán",)),
    "43": ("Tarragona", ("Reus", "El Vendrell", "Tortosa", "Cambrils", "Salou", "Valls", "Amposta")),
    "44": ("Teruel", ("Alcañiz",)),
    "45": ("Toledo", ("Talavera de la Reina", "Illescas", "Seseña", "Torrijos")),
    "46": ("Valencia", ("València", "Torrent", "Gandia", "Paterna", "Sagunto", "Sagunt", "Mislata",
                        "Burjassot", "Ontinyent", "Alzira", "Xàtiva", "Manises")),
    "47": ("Valladolid", ("Medina del Campo", "Laguna de Duero")),
    "48": ("Bizkaia", ("Vizcaya", "Bilbao", "Bilbo", "Barakaldo", "Getxo", "Portugalete", "Santurtzi",
                       "Basauri", "Leioa", "Galdakao", "Durango", "Sestao", "Erandio")),
    "49": ("Zamora", ("Benavente", "Toro")),
    "50": ("Zaragoza", ("Calatayud", "Utebo", "Ejea de los Caballeros", "Tarazona", "Caspe")),
    "51": ("Ceuta", ()),
    "52": ("Melilla", ()),
}

#: Autonomous communities (and the autonomous cities Ceuta and Melilla) by the subdivision code
#: the ``holidays`` package uses for Spain, with the name a reader knows them by.
COMMUNITIES: dict[str, str] = {
    "AN": "Andalucía", "AR": "Aragón", "AS": "Principado de Asturias", "CB": "Cantabria",
    "CE": "Ceuta", "CL": "Castilla y León", "CM": "Castilla-La Mancha", "CN": "Canarias",
    "CT": "Cataluña", "EX": "Extremadura", "GA": "Galicia", "IB": "Illes Balears",
    "MC": "Región de Murcia", "MD": "Comunidad de Madrid", "ML": "Melilla",
    "NC": "Comunidad Foral de Navarra", "PV": "País Vasco", "RI": "La Rioja",
    "VC": "Comunitat Valenciana",
}

#: Province prefix -> its community's code in :data:`COMMUNITIES`: each province lies in
#: exactly one community, so the postal code alone says whose regional holidays apply.
PROVINCE_COMMUNITY: dict[str, str] = {
    "01": "PV", "02": "CM", "03": "VC", "04": "AN", "05": "CL", "06": "EX", "07": "IB", "08": "CT",
    "09": "CL", "10": "EX", "11": "AN", "12": "VC", "13": "CM", "14": "AN", "15": "GA", "16": "CM",
    "17": "CT", "18": "AN", "19": "CM", "20": "PV", "21": "AN", "22": "AR", "23": "AN", "24": "CL",
    "25": "CT", "26": "RI", "27": "GA", "28": "MD", "29": "AN", "30": "MC", "31": "NC", "32": "GA",
    "33": "AS", "34": "CL", "35": "CN", "36": "GA", "37": "CL", "38": "CN", "39": "CB", "40": "CL",
    "41": "AN", "42": "CL", "43": "CT", "44": "AR", "45": "CM", "46": "VC", "47": "CL", "48": "PV",
    "49": "CL", "50": "AR", "51": "CE", "52": "ML",
}

_CODE = re.compile(r"[0-9]{5}")


@functools.lru_cache(maxsize=8192)
def normalise(name: str) -> str:
    """A place name as compared: lower case, no accents, punctuation as single spaces.

    Cached: a view renders a check for every address in its contact history, and the same few
    city names come back (10 µs each uncached: half of an as-of view of 5,000 moves)."""
    text = unicodedata.normalize("NFKD", name.strip().lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def _index() -> dict[str, frozenset[str]]:
    places: dict[str, set[str]] = {}
    for prefix, (province, cities) in PROVINCES.items():
        for name in (province, *cities):
            places.setdefault(normalise(name), set()).add(prefix)
    return {name: frozenset(prefixes) for name, prefixes in places.items()}


#: Normalised place name -> the province prefixes it is known under (one, for every name here).
PLACES: dict[str, frozenset[str]] = _index()


def province(postal_code: str) -> str | None:
    """The province a well-formed Spanish postal code belongs to, None when malformed."""
    code = postal_code.strip()
    if not _CODE.fullmatch(code) or code[:2] not in PROVINCES:
        return None
    return PROVINCES[code[:2]][0]


def community(postal_code: str) -> str | None:
    """The community code (:data:`COMMUNITIES`) of a well-formed Spanish postal code, None
    when malformed."""
    code = postal_code.strip()
    if not _CODE.fullmatch(code):
        return None
    return PROVINCE_COMMUNITY.get(code[:2])


def address_community(address: Any) -> str | None:
    """The community of a recorded postal address: None unless it is Spanish (``country``
    absent or Spain) with a well-formed postal code."""
    if not isinstance(address, Mapping) or not is_spanish(address):
        return None
    raw = address.get("postal_code")
    code = raw if isinstance(raw, str) else str(raw) if isinstance(raw, int) else ""
    return community(code)


def provinces_of(city: str) -> frozenset[str]:
    """The province prefixes a city is known under (empty when the table does not know it)."""
    return PLACES.get(normalise(city), frozenset())


def is_spanish(address: Mapping[str, Any]) -> bool:
    country = address.get("country")
    return country is None or (isinstance(country, str) and normalise(country).replace(" ", "") in SPANISH)


def check(address: Mapping[str, Any] | None) -> list[str]:
    """Verification flags of a postal address (empty: nothing to verify).

    Only Spanish addresses (``country`` absent, "ES", "ESP", "España", "Spain") are checked.
    """
    if not isinstance(address, Mapping) or not is_spanish(address):
        return []
    raw = address.get("postal_code")
    code = raw.strip() if isinstance(raw, str) else str(raw) if isinstance(raw, int) else ""
    if not _CODE.fullmatch(code) or code[:2] not in PROVINCES:
        return [MALFORMED]
    city = address.get("city")
    known = provinces_of(city) if isinstance(city, str) else frozenset()
    if known and code[:2] not in known:
        return [MISMATCH]
    return []
