from django.urls import path

from . import api, views

urlpatterns = [
    path("rooms/", views.room_list, name="room_list"),
    path("rooms/new/", views.room_new, name="room_new"),
    path("rooms/<slug:slug>/", views.room_detail, name="room_detail"),
    path("api/rooms/<slug:slug>/messages", api.messages, name="api_messages"),
    path("api/search", api.search_messages, name="api_search"),
    path("api/rooms/<slug:slug>/attachments", api.upload_attachment, name="api_upload_attachment"),
    path(
        "api/attachments/<int:attachment_id>",
        api.discard_attachment,
        name="api_discard_attachment",
    ),
    path(
        "attachments/<int:attachment_id>/<path:name>",
        views.attachment_file,
        name="attachment_file",
    ),
]
