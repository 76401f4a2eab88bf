import KeelAPI

typealias KeelAPIResource = Keel_V1_Resource
